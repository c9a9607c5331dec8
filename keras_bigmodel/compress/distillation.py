"""`distill`: knowledge distillation of a large model into a small one with
`keras.distillation`, for models that output probabilities."""

from __future__ import annotations

import keras
from keras import ops

from keras_bigmodel.validation import check_model

__all__ = ["ProbabilityDistillation", "distill"]


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class ProbabilityDistillation(keras.distillation.DistillationLoss):
    """Temperature-scaled KL distillation for models that output probabilities.

    `keras.distillation.LogitsDistillation` expects logits; the zoo's models end
    in softmax. Since `log p` differs from the logits by a constant per example,
    `softmax(log p / T)` is exactly the tempered teacher distribution.
    """

    def __init__(self, temperature: float = 3.0):
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or temperature <= 0
        ):
            raise ValueError(
                f"`temperature` must be a positive number. Received: temperature={temperature!r}"
            )
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        def tempered(p):
            p = ops.cast(p, "float32")
            return ops.softmax(ops.log(ops.clip(p, 1e-7, 1.0)) / self.temperature, axis=-1)

        losses = keras.tree.map_structure(
            lambda t, s: ops.mean(keras.losses.kl_divergence(tempered(t), tempered(s))),
            teacher_outputs,
            student_outputs,
        )
        return ops.sum(ops.stack(keras.tree.flatten(losses))) * self.temperature**2

    def get_config(self):
        return {"temperature": self.temperature}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def distill(
    teacher: keras.Model,
    student: keras.Model,
    x,
    y,
    temperature: float = 3.0,
    student_loss_weight: float = 0.5,
    epochs: int = 5,
    batch_size: int = 32,
    loss="categorical_crossentropy",
    optimizer="adam",
    validation_data=None,
    verbose: int | str = "auto",
) -> keras.Model:
    """Trains `student` to match `teacher`'s tempered predictions and the labels.

    Uses `keras.distillation.Distiller` with `ProbabilityDistillation`; the
    teacher is frozen. Returns the trained student (the same object).
    """
    check_model(teacher, "teacher")
    check_model(student, "student")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=ProbabilityDistillation(temperature),
        student_loss_weight=student_loss_weight,
    )
    distiller.compile(optimizer=optimizer, loss=loss)
    distiller.fit(
        x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data, verbose=verbose
    )
    return distiller.student
