"""Scoring on labelled data: the data sets' readers, the task metrics and one scorer per task."""
