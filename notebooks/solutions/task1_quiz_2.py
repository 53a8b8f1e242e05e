quiz.check(2, "b")
