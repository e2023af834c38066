"""Evaluation: question files with gold evidence, pure metrics, a runner over the real pipeline and
reports. Nothing here imports torch until a run opens the pipeline."""

from .questions import Question, QuestionFileError, check_gold, load_questions
from .runner import EvalResult, run_eval

__all__ = ["EvalResult", "Question", "QuestionFileError", "check_gold", "load_questions", "run_eval"]
