"""run_setup: one config -> data, the model built once, optimizer, state, executor, input pipeline."""
import pytest

from jaxcnn.train.config import TrainConfig


@pytest.mark.parametrize("parallel", ["pmap", "sharded"])
def test_the_model_is_built_once_and_handed_to_the_executor(monkeypatch, parallel):
    from jaxcnn import models
    from jaxcnn.train import executors, run_setup, sharded

    run_setup._model_and_optimizer.cache_clear()
    calls, real_get = [], models.get

    def counting_get(name, **kwargs):
        calls.append((name, kwargs))
        return real_get(name, **kwargs)

    monkeypatch.setattr(models, "get", counting_get)
    config = TrainConfig(dataset="digits", batch_size=64, eval_batch_size=64, train_examples=128,
                         test_examples=64, devices=2, parallel=parallel)
    run = run_setup.setup_run(config)
    assert calls == [("lenet5", {"num_classes": 10, "conv_impl": "auto", "dtype": "float32"})]
    assert run.model.conv_impl == "auto" and run.state.apply_fn == run.model.apply
    assert run.steps_per_epoch == 2 and run.augmentation is None  # digits: not augmented
    executor = run.executor
    assert executor.plain_apply == run.model.apply
    if parallel == "pmap":
        assert isinstance(executor, executors.Pmap)
        assert executor.synced_apply is None  # LeNet-5 has no batch norm to synchronise
    else:
        assert isinstance(executor, executors.Sharded)
        assert executor.sharded_apply == sharded.partitionable(run.model).apply
        assert sharded.partitionable(run.model).conv_impl == "auto_xla"
    assert executor.to_host(executor.place(run.state)).apply_fn == run.model.apply


def test_one_device_and_too_many_devices():
    from jaxcnn.train import executors
    from jaxcnn.models import get

    assert isinstance(executors.make_executor(TrainConfig(), get("lenet5")), executors.OneDevice)
    with pytest.raises(ValueError, match="devices=64 but JAX sees 4 device"):
        executors.make_executor(TrainConfig(devices=64, batch_size=128, eval_batch_size=128),
                                get("lenet5"))
