"""The text of `model.summary()`, for tests that read it."""


def summary_text(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return "\n".join(lines)
