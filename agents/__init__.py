"""FeedbackRec agents: the Agent protocol, the online loop, evaluation, the BERT recommender and baselines."""
