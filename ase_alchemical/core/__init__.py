"""The machinery every model kind shares, from structures to fitted states and files:
hypers and featomic's expansion (:mod:`.hypers`, :mod:`.features`), the compression U
(:mod:`.compression`), kernels (:mod:`.kernels`), one jittered SPD solve
(:mod:`.linalg`), farthest-point sampling (:mod:`.sampling`), the Adam loop on U
(:mod:`.optimize`), Gaussian-process calibration (:mod:`.gp`), labels
(:mod:`.targets`), the estimator base class (:mod:`.estimator`), fitted states
(:mod:`.state`) and the model-file format (:mod:`.serialization`).

Nothing here imports a model kind (:mod:`ase_alchemical.structure`,
:mod:`ase_alchemical.local`).
"""
