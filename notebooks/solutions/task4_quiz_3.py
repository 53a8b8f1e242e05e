quiz.check(3, "b")
