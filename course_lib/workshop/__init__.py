"""The course machinery beside the core: it may import the core, the core never imports it.

recipes (``get_recipe``: task + preset -> model, data, loss, sampler settings) · zoo
(``train_or_load``: the one way every lesson, benchmark and command gets a trained model) · shipped
(exported weights in ``pretrained/``) · predictor (lesson 08's predictors) · data_scale (finite data
sets) · cli (``python -m course_lib``) · checks (exercise checks) · build (the notebook pipeline:
``python -m course_lib notebooks build|check|time``) · bench (``python -m course_lib bench``).
"""
