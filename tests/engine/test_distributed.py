"""Data-parallel training: each rank's part of a batch, gradients weighted to give the one-process step, and
evaluation gathered without duplicates. Two real gloo processes (torch.multiprocessing) against one."""

import pickle

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from trainlab.data.loader import ArrayLoader
from trainlab.data.preprocess import ImagePreprocess
from trainlab.data.table_loader import TableLoader
from trainlab.data.text import TextLoader
from trainlab.engine.device import Placement
from trainlab.engine.distributed import Distributed, ShardedLoader, check_batch, leave_distributed, shardable_batches, split_sizes
from trainlab.engine.loop import Trainer
from trainlab.errors import UsageError

CPU = Placement(torch.device("cpu"), None, False)


def rank(r: int, world: int) -> Distributed:
    return Distributed(r, world, r, torch.device("cpu"))


def table(n: int, batch_size: int, shuffle: bool = True) -> TableLoader:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n, 5, generator=generator)
    labels = (features[:, 0] > 0).long() + (features[:, 1] > 0).long()  # 3 classes
    return TableLoader(features, labels, batch_size, shuffle=shuffle, seed=3)


def test_parts_of_a_batch_cover_it_once_and_weigh_it_whole():
    loader = table(11, 4)  # batches of 4, 4 and 3: the last splits 2 / 1
    parts = [list(ShardedLoader(loader, rank(r, 2))) for r in range(2)]
    whole = list(loader)
    assert len(parts[0]) == len(parts[1]) == len(whole) == 3
    for i, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][i][0], parts[1][i][0]]), x)  # every example once, in order
        assert torch.equal(torch.cat([parts[0][i][1], parts[1][i][1]]), y)
    assert split_sizes(3, 2) == [2, 1]


def test_gradient_weights_average_to_one():
    loader, weights = table(11, 4), []
    for r in range(2):
        dist_ = rank(r, 2)
        weights.append([dist_.gradient_weight[0] for _ in ShardedLoader(loader, dist_)])
    assert weights == [[1.0, 1.0, 2 * 2 / 3], [1.0, 1.0, 2 * 1 / 3]]  # the last batch: 2 of 3 examples, 1 of 3


def test_a_last_batch_smaller_than_the_ranks_is_left_out_of_training_but_not_of_evaluation():
    loader = table(9, 4)  # 4, 4, 1: one example cannot feed two ranks
    assert shardable_batches(9, 4, 2) == len(ShardedLoader(loader, rank(0, 2))) == 2
    assert len(list(ShardedLoader(loader, rank(1, 2)))) == 2
    evaluation = [list(ShardedLoader(table(9, 4, shuffle=False), rank(r, 2), every_batch=True)) for r in range(2)]
    assert [len(y) for _, y in evaluation[0]] == [2, 2, 1] and [len(y) for _, y in evaluation[1]] == [2, 2, 0]


def test_an_image_loader_builds_only_its_part_and_augments_it_with_its_own_generator():
    images = torch.randint(0, 256, (10, 4, 4, 3), dtype=torch.uint8)
    preprocess = ImagePreprocess(["a", "b"], (3, 4, 4), [127.0] * 3, [50.0] * 3)
    noise = lambda x, generator, **where: x + torch.rand(x.shape, generator=generator)  # noqa: E731
    loader = ArrayLoader(images, torch.arange(10) % 2, 4, preprocess=preprocess, shuffle=True, seed=1, augment=noise)
    plain = ArrayLoader(images, torch.arange(10) % 2, 4, preprocess=preprocess, shuffle=True, seed=1)
    for r in range(2):
        got = list(ShardedLoader(loader, rank(r, 2)))
        clean = list(ShardedLoader(plain, rank(r, 2)))
        assert [len(y) for _, y in got] == [2, 2, 1]
        for (x, y), (x_clean, y_clean) in zip(got, clean):
            assert torch.equal(y, y_clean) and not torch.allclose(x, x_clean)
    first = [next(iter(ShardedLoader(loader, rank(r, 2))))[0] - next(iter(ShardedLoader(plain, rank(r, 2))))[0] for r in range(2)]
    assert not torch.allclose(first[0], first[1])  # rank 1's noise is not rank 0's


def test_text_batches_are_split_after_they_are_built():
    ids = torch.randint(1, 50, (10, 6))
    lengths = torch.randint(1, 7, (10,))
    loader = TextLoader(ids, lengths, torch.arange(10) % 3, 4, shuffle=True, seed=2)
    whole = list(loader)
    parts = [list(ShardedLoader(loader, rank(r, 2))) for r in range(2)]
    for i, (x, y) in enumerate(whole):
        assert torch.equal(torch.cat([parts[0][i][1], parts[1][i][1]]), y)
        assert torch.equal(torch.cat([parts[0][i][0], parts[1][i][0]]), x)


def test_a_batch_the_ranks_cannot_share_is_a_usage_error():
    check_batch(64, 2)
    with pytest.raises(UsageError, match=r"data.batch_size=63 .* 2 does not divide it.*data.batch_size=64"):
        check_batch(63, 2)


# ---- two real processes


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def train_and_evaluate(dist_: Distributed | None) -> dict:
    net = model()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    trainer = Trainer(net, optimizer, nn.CrossEntropyLoss(), table(11, 4), None, epochs=2, placement=CPU, dist=dist_)
    history = trainer.fit()
    logits, targets, loss_sum = trainer.predict(table(7, 4, shuffle=False))  # eval batches 4, 3: parts 2/2, 2/1
    return {"weights": {k: v.clone() for k, v in net.state_dict().items()}, "history": history,
            "logits": logits, "targets": targets, "loss": loss_sum.item(), "steps": trainer.global_step}


def _rank_main(r: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=r, world_size=world)
    torch.set_num_threads(1)
    finished = False
    try:
        result = train_and_evaluate(rank(r, world))
        with open(f"{out}.{r}", "wb") as f:
            pickle.dump(result, f)
        finished = True
    finally:
        leave_distributed(finished)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_main, args=(2, str(folder / "store"), str(folder / "result")), nprocs=2, join=True)
    return [pickle.loads((folder / f"result.{r}").read_bytes()) for r in range(2)]


def test_two_processes_take_the_steps_of_one(two_processes):
    alone = train_and_evaluate(None)
    for result in two_processes:
        assert result["steps"] == alone["steps"] == 6
        for key, value in alone["weights"].items():
            torch.testing.assert_close(result["weights"][key], value, rtol=1e-5, atol=1e-6)
        for row, row_alone in zip(result["history"], alone["history"]):  # training sums: every example once
            assert row["train_loss"] == pytest.approx(row_alone["train_loss"], rel=1e-5)
            assert row["train_acc"] == pytest.approx(row_alone["train_acc"])


def test_evaluation_gathers_every_example_once_in_order(two_processes):
    alone = train_and_evaluate(None)
    for result in two_processes:
        assert len(result["targets"]) == 7
        assert torch.equal(result["targets"], alone["targets"])
        torch.testing.assert_close(result["logits"], alone["logits"], rtol=1e-5, atol=1e-6)
        assert result["loss"] == pytest.approx(alone["loss"], rel=1e-5)


def test_the_linear_scaling_rule_scales_the_rate_by_the_batch():
    from trainlab.build import build_optimizer
    from trainlab.config import load_config
    from trainlab.errors import ConfigNote

    config, _ = load_config(None, ["optimizer.lr=0.001", "data.batch_size=512", "optimizer.lr_scaling=linear"])
    with pytest.warns(ConfigNote, match=r"learning rate 0.001 x 512/256 = 0.002"):
        optimizer = build_optimizer(config, model())
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(0.002)]
    config, _ = load_config(None, ["optimizer.lr=0.001", "data.batch_size=512"])
    assert build_optimizer(config, model()).param_groups[0]["lr"] == 0.001  # off by default: the rate as given


def test_compiled_training_steps_give_the_eager_weights():
    def weights(compile: bool) -> dict:
        net = model()
        trainer = Trainer(net, torch.optim.SGD(net.parameters(), lr=0.5), nn.CrossEntropyLoss(), table(12, 4), None,
                          epochs=1, placement=CPU, compile=compile)  # fmt: skip
        trainer.fit()
        assert (trainer._compiled is not None and trainer._compiled[1]._orig_mod is net) == compile
        return net.state_dict()

    eager, compiled = weights(False), weights(True)
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-5, atol=1e-6)
