quiz.check(3, "a")
