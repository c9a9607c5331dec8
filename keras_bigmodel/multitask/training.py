"""Gradient aggregation inside `compile`/`fit`: `GradientAggregator` and `MultiTaskModel`.

`MultiTaskModel(model, aggregator)` wraps a multi-task model (outputs keyed by task)
and replaces Keras's training step by one that computes each task's loss, the
gradient of each task's loss (one backward pass per task: `tf.GradientTape`
gradients on TensorFlow, `jax.vjp` over a stateless forward pass on JAX,
`torch.autograd.grad` on PyTorch), combines the gradients of the shared variables
with the aggregator's method (`aggregate`), and applies the result with the
compiled optimizer. Task-specific variables get their own task's gradient.
Methods whose weights depend on the losses alone (`sum`, `mean`, `rlw`, `famo`)
need only one backward pass of the weighted loss.

With `representation="layer_name"`, the weights come from the gradients of the
tasks' losses with respect to that layer's output (MGDA-UB, Sener and Koltun 2018),
and the update is one backward pass of `sum_k w_k L_k`: one cheap backward pass
per task through the layers above the representation, and one full one.

The aggregator is a layer of the wrapper, so its state (GradNorm's and FAMO's
logits, the step's random seed) is saved in the `.keras` file and travels in JAX's
stateless training state like any other non-trainable weight.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel import validation as v
from keras_bigmodel.multitask import aggregation as agg
from keras_bigmodel.multitask.losses import TaskLoss

__all__ = ["GradientAggregator", "MultiTaskModel"]


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class GradientAggregator(keras.layers.Layer):
    """A gradient aggregation method with its state, for `MultiTaskModel`.

    Args:
        method: One of `kbm.multitask.METHODS` (`"pcgrad"`, `"cagrad"`,
            `"mgda"`, `"imtl_g"`, `"nash_mtl"`, `"aligned_mtl"`, `"upgrad"`,
            `"gradnorm"`, `"famo"`, `"rlw"`, `"sum"`, `"mean"`).
        num_tasks: The number of tasks (set by `MultiTaskModel`).
        seed: Seed of the random draws (`pcgrad`'s task order, `rlw`'s weights).
        learning_rate: Step size of the logits' updates (`gradnorm`, `famo`;
            0.025 as in LibMTL's FAMO).
        alpha: GradNorm's asymmetry (1.5).
        weight_decay: FAMO's decay of its logits (1e-3).
        options: Further options of the method (see `aggregate`), e.g.
            `{"c": 0.4}` for CAGrad.
        **kwargs: Base layer arguments (`name`).

    Raises:
        ValueError: For an unknown method or option.
    """

    def __init__(
        self,
        method: str = "pcgrad",
        num_tasks: int | None = None,
        seed: int | None = None,
        learning_rate: float = 0.025,
        alpha: float = 1.5,
        weight_decay: float = 1e-3,
        options: Mapping | None = None,
        **kwargs,
    ):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.method = agg.check_method(method)
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(f"`options` must be a dict. Received: options={options!r}")
        self.options = agg.check_options(self.method, dict(options or {}))
        for key in ("seed", "logits", "losses"):
            if key in self.options:
                raise ValueError(
                    f"GradientAggregator sets `{key}` itself; pass `seed=` to the aggregator. "
                    f"Received: options={dict(options)!r}"
                )
        self.num_tasks = None if num_tasks is None else v.check_positive_int("num_tasks", num_tasks)
        self.seed = seed
        self.learning_rate = v.check_number("learning_rate", learning_rate, minimum=0.0)
        self.alpha = v.check_number("alpha", alpha)
        self.weight_decay = v.check_number("weight_decay", weight_decay, minimum=0.0)
        self.seed_generator = keras.random.SeedGenerator(seed)
        if self.num_tasks is not None:
            self.build()

    @property
    def needs_task_gradients(self) -> bool:
        """Whether a step needs one backward pass per task."""
        return self.method not in agg.LOSS_ONLY_METHODS

    def build(self, input_shape=None):
        if self.built:
            return
        if self.num_tasks is None:
            raise ValueError("GradientAggregator needs `num_tasks` before it is built")
        k = self.num_tasks
        if self.method in agg.STATEFUL_METHODS:
            self.logits = self.add_weight(
                name="logits", shape=(k,), initializer="zeros", trainable=False
            )
            self.reference_losses = self.add_weight(
                name="reference_losses", shape=(k,), initializer="zeros", trainable=False
            )
            self.started = self.add_weight(
                name="started", shape=(), initializer="zeros", trainable=False
            )
        self.built = True

    def call(self, inputs):
        return inputs

    def task_weights_now(self):
        """The weights the stateful methods give the tasks now (others: None)."""
        if self.method == "gradnorm":
            return self.num_tasks * ops.softmax(self.logits)
        if self.method == "famo":
            return ops.softmax(self.logits)
        return None

    def _seeded(self):
        if self.method in ("pcgrad", "rlw"):
            return {"seed": self.seed_generator}
        return {}

    def weights_for(self, gradients, losses):
        """The tasks' weights for this step, from `(tasks, n)` gradients (None for the
        loss-only methods) and the `(tasks,)` losses; updates the method's state."""
        losses = ops.cast(ops.stop_gradient(losses), "float32")
        k = self.num_tasks
        if self.method in agg.STATEFUL_METHODS:
            logits = ops.convert_to_tensor(self.logits.value)
            reference = ops.convert_to_tensor(self.reference_losses.value)
            started = ops.convert_to_tensor(self.started.value) > 0
        if self.method == "famo":
            grad = agg.famo_logits_gradient(reference, losses, logits)
            new_logits = logits - self.learning_rate * (grad + self.weight_decay * logits)
            logits = ops.where(started, new_logits, logits)
            self.logits.assign(logits)
            self.reference_losses.assign(losses)
            self.started.assign(ops.ones(()))
            return agg.aggregation_weights(ops.zeros((k, 1)), "famo", losses=losses, logits=logits)
        if self.method == "gradnorm":
            initial = ops.where(started, reference, losses)
            self.reference_losses.assign(initial)
            self.started.assign(ops.ones(()))
            weights = k * ops.softmax(logits)
            grad = agg.gradnorm_logits_gradient(
                gradients, losses, initial, logits, alpha=self.alpha
            )
            self.logits.assign(logits - self.learning_rate * grad)
            return weights
        if gradients is None:
            gradients = ops.zeros((k, 1))
        return agg.aggregation_weights(gradients, self.method, **self.options, **self._seeded())

    def get_config(self):
        config = super().get_config()
        config.update(
            method=self.method,
            num_tasks=self.num_tasks,
            seed=self.seed,
            learning_rate=self.learning_rate,
            alpha=self.alpha,
            weight_decay=self.weight_decay,
            options=dict(self.options) or None,
        )
        return config


def _is_task_specific(variable, tasks) -> str | None:
    parts = variable.path.split("/")
    for task in tasks:
        if task in parts or f"tower_{task}" in parts:
            return task
    return None


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class MultiTaskModel(keras.Model):
    """A multi-task model trained with a gradient aggregation method by `fit`.

    Args:
        model: A Keras model whose outputs are a dict keyed by task (a zoo
            multi-task preset, or a functional model on `MultiTaskHead`).
        aggregator: A `GradientAggregator`, or a method name.
        representation: Optional name of a layer of `model` whose output is the
            shared representation: the weights then come from the gradients with
            respect to it (the cheap variant; MGDA-UB for `"mgda"`). The model
            must be functional and its outputs must depend on the inputs only
            through that layer.
        shared: `"auto"` (default): a variable is task-specific when its path
            names a task (`heads/task1/...`, `tower_task1/...`) and shared
            otherwise; `"all"`: every variable's gradient is aggregated.
        **kwargs: `name`.

    Compile it as the model itself, with one loss per task (a dict; `TaskLoss`
    for partial labels and task weighting layers) and optional `loss_weights`.

    Example:

    ```python
    import numpy as np
    import zoo
    import keras_bigmodel as kbm

    net = zoo.build("multitask", compile=False, input_shape=(12,), trunk_units=(8,),
                    tasks={"task1": {"units": 3, "activation": "softmax"},
                           "task2": {"units": 2, "activation": "softmax"}})
    model = kbm.multitask.MultiTaskModel(net, "pcgrad")
    model.compile("adam", loss={"task1": "categorical_crossentropy",
                                "task2": "categorical_crossentropy"})
    x = np.random.rand(16, 12).astype("float32")
    y = {"task1": np.eye(3)[np.arange(16) % 3], "task2": np.eye(2)[np.arange(16) % 2]}
    model.fit(x, y, epochs=1, verbose=0)
    ```
    """

    def __init__(self, model, aggregator="pcgrad", representation=None, shared="auto", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"`model` must be a keras.Model. Received: model={model!r}")
        tasks = list(model.output_names)
        if len(tasks) < 1 or len(set(tasks)) != len(tasks):
            raise ValueError(
                "`model` must have outputs named by task (a dict of outputs). "
                f"Received a model with output names {tasks}"
            )
        if isinstance(aggregator, str):
            aggregator = GradientAggregator(aggregator, num_tasks=len(tasks))
        if not isinstance(aggregator, GradientAggregator):
            raise TypeError(
                "`aggregator` must be a GradientAggregator or a method name. "
                f"Received: aggregator={aggregator!r}"
            )
        if aggregator.num_tasks is None:
            aggregator.num_tasks = len(tasks)
            aggregator.build()
        if aggregator.num_tasks != len(tasks):
            raise ValueError(
                f"The aggregator is built for {aggregator.num_tasks} tasks; the model has "
                f"{len(tasks)}: {tasks}"
            )
        self.model = model
        self.aggregator = aggregator
        self.tasks = tasks
        self.shared = v.check_choice("shared", shared, ("auto", "all"))
        self.representation = representation
        self._split = None
        if representation is not None:
            try:
                layer = model.get_layer(representation)
            except ValueError as error:
                raise ValueError(
                    f"`representation` must name a layer of the model. "
                    f"Received: representation={representation!r}"
                ) from error
            # model.input keeps the structure the user feeds (one tensor, a list, a dict)
            encoder = keras.Model(model.input, layer.output)
            head = keras.Model(layer.output, dict(zip(tasks, model.outputs)))
            self._split = (encoder, head)
        self._task_losses = None

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, **kwargs):
        if not isinstance(loss, Mapping) or sorted(loss) != sorted(self.tasks):
            raise ValueError(
                f"MultiTaskModel.compile needs `loss`, a dict with one loss per task "
                f"{self.tasks}. Received: loss={loss!r}"
            )
        loss_weights = dict(loss_weights or {})
        unknown = sorted(set(loss_weights) - set(self.tasks))
        if unknown:
            raise ValueError(
                f"`loss_weights` must be keyed by tasks {self.tasks}. Received: {loss_weights!r}"
            )
        self._task_losses = {}
        for task in self.tasks:
            fn = loss[task]
            if not isinstance(fn, keras.losses.Loss):
                # a name or a function: its mean over the labelled samples (NaN = missing)
                fn = TaskLoss(fn, task=task)
            self._task_losses[task] = (fn, float(loss_weights.get(task, 1.0)))
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights or None, **kwargs)

    def compile_from_config(self, config):
        """Recompiles a reloaded model with its saved settings (and the optimizer's
        state, which Keras then loads from the file)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------- the losses
    def _per_task(self, value, what):
        if value is None:
            return dict.fromkeys(self.tasks)
        if isinstance(value, Mapping):
            return {t: value.get(t) for t in self.tasks}
        if isinstance(value, (list, tuple)) and len(value) == len(self.tasks):
            return dict(zip(self.tasks, value))
        if what == "sample_weight":
            return dict.fromkeys(self.tasks, value)
        raise ValueError(f"`{what}` must be a dict keyed by task {self.tasks}")

    def task_losses(self, y, y_pred, sample_weight=None):
        """The `(tasks + 1,)` vector of weighted task losses and the regularisation loss."""
        if self._task_losses is None:
            raise ValueError("MultiTaskModel must be compiled before it is trained")
        ys = self._per_task(y, "y")
        sws = self._per_task(sample_weight, "sample_weight")
        values = []
        for task in self.tasks:
            fn, weight = self._task_losses[task]
            value = fn(ys[task], y_pred[task], sample_weight=sws[task])
            values.append(ops.cast(value, "float32") * weight)
        reg = self.losses
        values.append(ops.cast(ops.sum(ops.stack(reg)), "float32") if reg else ops.zeros(()))
        return ops.stack(values)

    # ------------------------------------------------------- the aggregation
    def _groups(self):
        """For each trainable variable, the index of its task (or None: shared)."""
        if self.shared == "all":
            return [None] * len(self.trainable_variables)
        return [
            None if (t := _is_task_specific(var, self.tasks)) is None else self.tasks.index(t)
            for var in self.trainable_variables
        ]

    def _combine(self, jacobians, losses, scale=None):
        """Per-variable gradients from per-variable `(tasks + 1, ...)` Jacobians."""
        k = len(self.tasks)
        groups = self._groups()
        if scale is not None:
            jacobians = [j / scale for j in jacobians]
        shared = [j for j, grp in zip(jacobians, groups) if grp is None]
        flat = None
        if shared:
            flat = ops.concatenate([ops.reshape(j[:k], (k, -1)) for j in shared], axis=1)
        weights = self.aggregator.weights_for(flat, losses[:k])
        weights = ops.stop_gradient(weights)
        grads = []
        for j, grp in zip(jacobians, groups):
            if grp is None:
                w = ops.reshape(ops.cast(weights, j.dtype), (k,) + (1,) * (len(j.shape) - 1))
                g = ops.sum(j[:k] * w, axis=0) + j[k]
            else:
                g = j[grp] + j[k]
            grads.append(g if scale is None else g * scale)
        return grads

    def _weights_from_representation(self, rep_jacobian, losses):
        k = len(self.tasks)
        flat = ops.reshape(rep_jacobian[:k], (k, -1))
        return ops.stop_gradient(self.aggregator.weights_for(flat, losses[:k]))

    # -------------------------------------------------------- training steps
    def train_step(self, *args):
        backend = keras.backend.backend()
        if backend == "jax":
            return self._train_step_jax(*args)
        if backend == "torch":
            return self._train_step_torch(*args)
        if backend == "tensorflow":
            return self._train_step_tf(*args)
        raise ValueError(f"MultiTaskModel trains on tensorflow, jax or torch, not {backend!r}")

    def _forward(self, x, training=True):
        if self._split is None:
            return None, self(x, training=training)
        encoder = self._split[0]
        z = encoder(x, training=training)
        return z, z

    def _head(self, z, training=True):
        return self._split[1](z, training=training)

    def _loss_scale(self):
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            return ops.cast(self.optimizer.scale_loss(ops.ones(())), "float32")
        return None

    def _batch(self, x):
        return ops.shape(next(i for i in keras.tree.flatten(x) if i is not None))[0]

    def _finish(self, x, y, y_pred, sample_weight, losses):
        _compat.update_loss_metric(self, ops.sum(losses), self._batch(x))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _train_step_tf(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        scale = self._loss_scale()
        with tf.GradientTape(persistent=True) as tape:
            z, out = self._forward(x)
            if z is not None:
                tape.watch(z)
                y_pred = self._head(z)
            else:
                y_pred = out
            losses = self.task_losses(y, y_pred, sample_weight)
            scaled = losses if scale is None else losses * scale
            parts = [scaled[i] for i in range(len(self.tasks) + 1)]  # sliced under the tape
            if self._split is not None:
                rep = [tape.gradient(parts[i], z) for i in range(len(self.tasks))]
                rep = ops.stack([ops.zeros_like(z) if r is None else r for r in rep])
                weights = self._weights_from_representation(
                    rep if scale is None else rep / scale, losses
                )
                total = ops.sum(scaled[:-1] * weights) + scaled[-1]
            elif not self.aggregator.needs_task_gradients:
                weights = self.aggregator.weights_for(None, losses[:-1])
                total = ops.sum(scaled[:-1] * ops.stop_gradient(weights)) + scaled[-1]
        if self._split is not None or not self.aggregator.needs_task_gradients:
            grads = tape.gradient(total, variables)
            grads = [ops.zeros_like(v_) if g is None else g for g, v_ in zip(grads, variables)]
        else:
            rows = [tape.gradient(part, variables) for part in parts]
            jac = [
                ops.stack([ops.zeros_like(var) if r[n] is None else r[n] for r in rows])
                for n, var in enumerate(variables)
            ]
            grads = self._combine(jac, losses, scale)
        del tape
        self.optimizer.apply(grads, variables)
        return self._finish(x, y, y_pred, sample_weight, losses)

    def _train_step_torch(self, data):
        import torch

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self.zero_grad()
        variables = self.trainable_variables
        params = [var.value for var in variables]
        scale = self._loss_scale()
        z, out = self._forward(x)
        y_pred = self._head(z) if z is not None else out
        losses = self.task_losses(y, y_pred, sample_weight)
        scaled = losses if scale is None else losses * scale
        k = len(self.tasks)

        def grad(target, inputs):
            got = torch.autograd.grad(target, inputs, retain_graph=True, allow_unused=True)
            return [torch.zeros_like(i) if g is None else g for g, i in zip(got, inputs)]

        if self._split is not None:
            rep = torch.stack([grad(scaled[i], [z])[0] for i in range(k)])
            weights = self._weights_from_representation(
                rep if scale is None else rep / scale, losses
            )
            grads = grad(torch.sum(scaled[:-1] * weights) + scaled[-1], params)
        elif not self.aggregator.needs_task_gradients:
            weights = self.aggregator.weights_for(None, losses[:-1]).detach()
            grads = grad(torch.sum(scaled[:-1] * weights) + scaled[-1], params)
        else:
            rows = [grad(scaled[i], params) for i in range(k + 1)]
            jac = [torch.stack([r[n] for r in rows]) for n in range(len(params))]
            with torch.no_grad():
                grads = self._combine(jac, losses.detach(), scale)
        with torch.no_grad():
            self.optimizer.apply([g.detach() for g in grads], variables)
        return self._finish(x, y, y_pred, sample_weight, losses.detach())

    def _train_step_jax(self, state, data):
        import jax
        import jax.numpy as jnp

        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        k = len(self.tasks)
        with keras.StatelessScope(
            state_mapping=list(zip(self.optimizer.variables, optimizer_vars))
        ):
            scale = self._loss_scale()

        def mapping(tv, ntv, mv):
            return (
                list(zip(self.trainable_variables, tv))
                + list(zip(self.non_trainable_variables, ntv))
                + list(zip(self.metrics_variables, mv))
            )

        def collect(scope):
            ntv = [scope.get_current_value(var) for var in self.non_trainable_variables]
            mv = [scope.get_current_value(var) for var in self.metrics_variables]
            return ntv, mv

        def forward(tv, rep_override=None):
            with keras.StatelessScope(
                state_mapping=mapping(tv, non_trainable, metrics_vars)
            ) as scope:
                z, out = self._forward(x)
                if z is not None:
                    z_used = z if rep_override is None else rep_override
                    y_pred = self._head(z_used)
                else:
                    y_pred = out
                losses = self.task_losses(y, y_pred, sample_weight)
            ntv, mv = collect(scope)
            scaled = losses if scale is None else losses * scale
            return scaled, (losses, y_pred, ntv, mv, z)

        def aggregator_step(ntv, fn):
            with keras.StatelessScope(
                state_mapping=list(zip(self.non_trainable_variables, ntv))
            ) as scope:
                result = fn()
            return result, [scope.get_current_value(var) for var in self.non_trainable_variables]

        if self._split is not None:
            _, (losses, _, _, _, z) = forward(trainable)

            def head_losses(zz):
                return forward(trainable, rep_override=zz)[0][:k]

            _, vjp_rep = jax.vjp(head_losses, z)
            rep = jax.vmap(vjp_rep)(jnp.eye(k, dtype=losses.dtype))[0]
            (weights, non_trainable_new) = aggregator_step(
                forward(trainable)[1][2],
                lambda: self._weights_from_representation(
                    rep if scale is None else rep / scale, losses
                ),
            )

            def weighted(tv):
                scaled, aux = forward(tv)
                return jnp.sum(scaled[:-1] * weights) + scaled[-1], aux

            grads, aux = jax.grad(weighted, has_aux=True)(trainable)
            losses, y_pred, _, metrics_new, _ = aux
        elif not self.aggregator.needs_task_gradients:
            _, (losses0, *_rest) = forward(trainable)
            weights, ntv_after = aggregator_step(
                non_trainable, lambda: self.aggregator.weights_for(None, losses0[:-1])
            )
            weights = jax.lax.stop_gradient(weights)

            def weighted(tv):
                scaled, aux = forward(tv)
                return jnp.sum(scaled[:-1] * weights) + scaled[-1], aux

            grads, aux = jax.grad(weighted, has_aux=True)(trainable)
            losses, y_pred, ntv_model, metrics_new, _ = aux
            # the model's own updates (e.g. gate statistics), then the aggregator's state
            non_trainable_new = _merge(self, ntv_model, ntv_after, non_trainable)
        else:
            scaled, vjp_fn, aux = jax.vjp(lambda tv: forward(tv), trainable, has_aux=True)
            losses, y_pred, ntv_model, metrics_new, _ = aux
            jac = jax.vmap(vjp_fn)(jnp.eye(k + 1, dtype=scaled.dtype))[0]
            grads, ntv_after = aggregator_step(
                ntv_model, lambda: self._combine(list(jac), losses, scale)
            )
            non_trainable_new = ntv_after
        trainable_new, optimizer_new = self.optimizer.stateless_apply(
            optimizer_vars, list(grads), trainable
        )
        with keras.StatelessScope(
            state_mapping=list(zip(self.metrics_variables, metrics_new))
        ) as scope:
            logs = self._finish(x, y, y_pred, sample_weight, losses)
        metrics_new = [scope.get_current_value(var) for var in self.metrics_variables]
        return logs, (trainable_new, non_trainable_new, optimizer_new, metrics_new)

    # ----------------------------------------------------------- serialising
    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "aggregator": keras.saving.serialize_keras_object(self.aggregator),
            "representation": self.representation,
            "shared": self.shared,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config["aggregator"] = keras.saving.deserialize_keras_object(config["aggregator"])
        return cls(**config)


def _merge(model, ntv_model, ntv_aggregator, ntv_before):
    """The model's updated non-trainable values, except the aggregator's own variables,
    which come from the aggregator's step."""
    own = {id(var) for var in model.aggregator.non_trainable_variables}
    return [
        agg_value if id(var) in own else model_value
        for var, model_value, agg_value in zip(
            model.non_trainable_variables, ntv_model, ntv_aggregator
        )
    ]
