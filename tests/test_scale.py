"""train --dry-run's size projection, against a real file and at ImageNet scale."""

import pytest

from noisyctl.training import TrainOptions, projected_size


@pytest.mark.slow
def test_dry_run_projects_the_size_of_the_file_train_writes(cli, tmp_path):
    cli("synth", "-o", tmp_path / "l.h5")
    plan = cli.json("train", "-l", tmp_path / "l.h5", "-e", "4", "--dry-run")
    assert not list(tmp_path.glob("*.ckpt")) and len(list(tmp_path.iterdir())) == 1  # nothing trained or written
    assert set(plan["fields"]) >= {"dynamics/train_loss", "dynamics/eval_pred", "probs/late_mean", "features/penultimate"}
    cli("train", "-l", tmp_path / "l.h5", "-e", "4", "-q", "-o", tmp_path / "r.h5")
    actual = (tmp_path / "r.h5").stat().st_size
    # Integer channels are compressed in the file, so it is somewhat smaller than the projection.
    assert 0.4 * plan["total_bytes"] < actual < 1.1 * plan["total_bytes"]
    # The time it projects, from real steps on this data, is the time training takes within a factor of 3
    # (training also writes checkpoints; the projection times steps alone).
    trained = cli.json("train", "-l", tmp_path / "l.h5", "-e", "4", "-q", "--restart", "-o", tmp_path / "r2.h5")
    assert plan["input_shape"] == [1, 8, 8] and plan["input_kind"] == "image" and plan["timed_batches"] >= 2
    assert trained["seconds"] / 3 < plan["estimated_seconds"] < 3 * trained["seconds"]


def test_the_default_record_set_stays_small_at_imagenet_scale():
    # 1,281,167 samples, 1,000 classes, 90 epochs, a ResNet-50 head (2,048 features).
    sizes = dict(projected_size(1_281_167, 1000, TrainOptions(epochs=90), 2048))
    assert "probs/late_mean" not in sizes and "features/penultimate" not in sizes  # opt-in above 100 classes / 1 GiB
    assert sum(sizes.values()) < 3.2 * 2**30
    opted_in = dict(projected_size(1_281_167, 1000, TrainOptions(epochs=90, record_probs=True), 2048))
    assert opted_in["probs/late_mean"] == 1_281_167 * 1000 * 2


def test_dry_run_refuses_what_train_would_refuse(cli, tmp_path):
    cli("synth", "-o", tmp_path / "l.h5")
    for extra, message in ((["--strategy", "reweight"], "needs trusted samples"),
                           (["--aum-threshold-set", "1", "--strategy", "self-learning"], "standard strategy only"),
                           (["--trusted", tmp_path / "missing.h5", "--strategy", "reweight"], "missing.h5"),
                           (["--folds", "1"], "folds must be 0 (none) or at least 2"),
                           (["-m", "mlp", "-M", "hidden=x"], "model 'mlp' from plugin 'models'")):
        for dry in ([], ["--dry-run"]):
            line = cli.error("train", "-l", tmp_path / "l.h5", "-e", "1", "-q", "-o", tmp_path / "r.h5", *extra, *dry)
            assert message in line, (extra, dry, line)
    assert not (tmp_path / "r.h5").exists()
