"""The retention study: stages chained (each a recipe + overrides, each starting from the one before), evaluated
before the first and after every stage, and what each stage kept and lost (the accuracy matrix, changes with
paired intervals, flips, forgetting, backward transfer).

    study = read_study("recipes/studies/smollm2_cpu.yaml")   # the file's structure, one-line errors
    plan = check_study(study)                                 # every recipe, model and benchmark, no model loaded
    print(format_plan(plan)); outcome = run_study(plan, resume=True)

The top package: it runs training, evaluation and export through their faces.
"""

from utils.study._outputs import MATRIX, PLOTS, REPORT, write_outputs
from utils.study._plan import Chain, StudyPlan, check_study, format_plan
from utils.study._retention import read_row, retention
from utils.study._run import StudyOutcome, run_study
from utils.study._spec import Study, StudyBenchmark, StudyStage, read_study

__all__ = [
    "MATRIX",
    "PLOTS",
    "REPORT",
    "Chain",
    "Study",
    "StudyBenchmark",
    "StudyOutcome",
    "StudyPlan",
    "StudyStage",
    "check_study",
    "format_plan",
    "read_row",
    "read_study",
    "retention",
    "run_study",
    "write_outputs",
]
