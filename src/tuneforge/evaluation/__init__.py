"""Evaluation of a model on a test file: predictions come from the inference engine (the code behind
`/v1/completions`), metrics from scikit-learn, sacrebleu and rouge-score."""
