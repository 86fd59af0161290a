"""The release pipeline of the bundled default detector - product code, run as ``python -m edge_dfd.release``.

Stages (each resumable; one command, ``all``, runs them in order)::

    python -m edge_dfd.release train   # the single-pass student, from the teacher, deployment augmentation
    python -m edge_dfd.release ship    # convert to every format (verified), score clean + perturbed test
                                       #   splits for student and teacher, write edge_dfd/assets/default
    python -m edge_dfd.release card    # MODEL_CARD.md and benchmarks/results/detector_v2.{json,md}
    python -m edge_dfd.release baselines  # single-view baselines cut from the teacher beside the student

Modules: ``augment`` (deployment augmentation), ``student`` (model + training loop), ``ship`` (export,
scoring, bundle, model card).
"""
