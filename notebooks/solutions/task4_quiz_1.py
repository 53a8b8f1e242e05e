quiz.check(1, "b")
