"""metrics.jsonl and samples.txt survive a kill: torn lines are skipped, never glued onto."""

import json

from minigpt.runlog import (METRICS, SAMPLES, append_metrics, append_sample, forget_after,
                            read_metrics)


def test_records_come_back_in_order_and_a_missing_file_is_no_records(tmp_path):
    assert read_metrics(tmp_path) == []
    append_metrics(tmp_path, {"step": 10, "val_nats": 2.5})
    append_metrics(tmp_path, {"step": 20, "val_nats": 2.25})
    assert read_metrics(tmp_path) == [{"step": 10, "val_nats": 2.5}, {"step": 20, "val_nats": 2.25}]
    assert (tmp_path / METRICS).read_text() == ('{"step": 10, "val_nats": 2.5}\n'
                                                '{"step": 20, "val_nats": 2.25}\n')


def test_reader_skips_a_torn_last_line_and_lines_that_are_not_objects(tmp_path):
    (tmp_path / METRICS).write_text('{"step": 10}\n\nnot json\n[1, 2]\n7\n"text"\n{"step": 20}\n'
                                    '{"step": 30, "val_na')  # killed halfway through a write
    assert read_metrics(tmp_path) == [{"step": 10}, {"step": 20}]


def test_a_write_after_a_torn_line_starts_on_a_new_line(tmp_path):
    (tmp_path / METRICS).write_text('{"step": 10}\n{"step": 20, "va')
    append_metrics(tmp_path, {"step": 20})
    assert (tmp_path / METRICS).read_text().splitlines() == ['{"step": 10}', '{"step": 20, "va',
                                                             '{"step": 20}']
    assert read_metrics(tmp_path) == [{"step": 10}, {"step": 20}]
    (tmp_path / SAMPLES).write_text("--- step 10\nOnce upon a ti")
    append_sample(tmp_path, 20, "Tom had a kite.")
    assert (tmp_path / SAMPLES).read_text() == "--- step 10\nOnce upon a ti\n--- step 20\nTom had a kite.\n"


def test_forget_after_keeps_only_what_was_logged_up_to_the_step(tmp_path):
    for step in (10, 20, 30):
        append_metrics(tmp_path, {"step": step, "lr": 0.1 * step})
        append_sample(tmp_path, step, f"story {step}\nsecond line")
    with open(tmp_path / METRICS, "a") as f:
        f.write('{"step": 40, "lr')  # a torn record from the kill
    forget_after(tmp_path, 20)
    assert [json.loads(line)["step"] for line in (tmp_path / METRICS).read_text().splitlines()] == [10, 20]
    assert (tmp_path / SAMPLES).read_text() == ("--- step 10\nstory 10\nsecond line\n"
                                                "--- step 20\nstory 20\nsecond line\n")
    append_metrics(tmp_path, {"step": 30})  # the replayed step is logged once, on its own line
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20, 30]
    assert not list(tmp_path.glob(".*.tmp"))


def test_forget_after_leaves_a_run_without_logs_alone(tmp_path):
    forget_after(tmp_path, 0)
    assert list(tmp_path.iterdir()) == []


def test_reader_skips_damaged_bytes_and_absurdly_nested_lines(tmp_path):
    (tmp_path / METRICS).write_bytes(b'{"step": 10}\n\xff\xfe{"step"\n' + b"[" * 100_000 + b"\n"
                                     + b'{"step": 20}\n')
    assert read_metrics(tmp_path) == [{"step": 10}, {"step": 20}]


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    board.Reload()
    return board


def test_tensorboard_gets_the_numbers_of_metrics_jsonl_and_the_samples(tmp_path, story_file):
    import pytest
    pytest.importorskip("tensorboard")
    from minigpt import ModelConfig, TrainConfig, train

    cfg = TrainConfig(data=[story_file], batch_size=8, max_steps=40, eval_interval=20, eval_batches=1,
                      sample_chars=30, threads=1, warmup_steps=2, plot_loss=False, tensorboard=True)
    run = train(ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1), cfg, tmp_path / "run",
                log=lambda *a: None, interrupt_at_step=20)
    train(None, TrainConfig(max_steps=40, tensorboard=True), run, resume=True, log=lambda *a: None)
    board = _events(run)
    records = read_metrics(run)
    assert [r["step"] for r in records] == [20, 40]
    for tag, key in (("bits_per_char/held_out", "val_bpc"), ("bits_per_char/train", "train_bpc"),
                     ("learning_rate", "lr"), ("chars_per_s", "chars_per_s")):
        events = board.Scalars(tag)
        assert [e.step for e in events] == [20, 40], tag  # the resumed run's step 20 is not there twice
        assert [e.value for e in events] == pytest.approx([r[key] for r in records], rel=1e-6)
    texts = board.Tensors("sample/text_summary")
    assert [t.step for t in texts] == [20, 40]
    story = texts[-1].tensor_proto.string_val[0].decode()
    assert story.replace("  \n", "\n") == (run / SAMPLES).read_text().split("--- step 40\n")[1].rstrip("\n")


def test_without_tensorboard_installed_the_flag_is_one_line(tmp_path, story_file, monkeypatch):
    import sys

    import pytest
    from minigpt import ModelConfig, TrainConfig, UserError, train

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(UserError, match="pip install tensorboard"):
        train(ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1),
              TrainConfig(data=[story_file], max_steps=2, threads=1, tensorboard=True, plot_loss=False),
              tmp_path / "run", log=lambda *a: None)
