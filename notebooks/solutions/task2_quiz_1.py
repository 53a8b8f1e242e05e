quiz.check(1, "a")
