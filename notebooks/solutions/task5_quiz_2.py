quiz.check(2, "a")
