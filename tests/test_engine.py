"""The generation engine: a story depends only on its own prompt, settings and seed, never on the
batch around it; streams join and leave between steps; the cache equals recomputation."""

import pytest
import torch

from minigpt import MiniGPT, ModelConfig, SampleConfig, UserError, generate, generate_batch, load
from minigpt.engine import Engine, Full, Stream
from minigpt.model import KVCache
from minigpt.precision import autocast
from minigpt.sampling import make_generator

from conftest import LADDER, shaken

VOCAB = 12


def small_model(block=16, ladder=None) -> MiniGPT:
    """A small model; with `ladder` options its weights are also moved off their initial values."""
    torch.manual_seed(1)
    model = MiniGPT(ModelConfig(vocab_size=VOCAB, block_size=block, n_embd=32, num_heads=4,
                                n_layers=2, dropout=0.0, **(ladder or {}))).eval()
    return shaken(model) if ladder else model


# Sixteen streams that differ in everything: prompt length (some past block_size), settings,
# seed and length limit. Greedy, top-k and top-p rows share the batch with plain sampling.
SETTINGS = [dict(), dict(temperature=1.3), dict(top_k=3), dict(top_p=0.7), dict(greedy=True),
            dict(temperature=0.5, top_k=5, top_p=0.9), dict(temperature=0.0), dict(top_k=1)]


def stream_specs(n=16):
    specs = []
    for i in range(n):
        prompt = [(3 * i + j) % (VOCAB - 1) + 1 for j in range(1 + (5 * i) % 21)]
        cfg = SampleConfig(max_new_tokens=10 + 7 * i, stop_at_eos=False, **SETTINGS[i % len(SETTINGS)])
        specs.append((prompt, cfg, 100 + i))
    return specs


def run_alone(model, prompt, cfg, seed, use_cache=True):
    engine = Engine(model, max_batch=1, use_cache=use_cache)
    s = engine.add(Stream(prompt, cfg, make_generator(seed)))
    engine.run()
    return s.tokens


def test_a_story_is_the_same_alone_or_among_fifteen_others():
    model = small_model()
    specs = stream_specs()
    alone = [run_alone(model, *spec) for spec in specs]
    engine = Engine(model, max_batch=16)
    streams = [engine.add(Stream(p, cfg, make_generator(seed))) for p, cfg, seed in specs]
    steps = 0
    while engine.step():
        steps += 1
        assert len(engine.live) <= 16
    assert [s.tokens for s in streams] == alone  # token for token, in fp32
    assert [len(s.tokens) for s in streams] == [cfg.max_new_tokens for _, cfg, _ in specs]
    assert steps == max(cfg.max_new_tokens for _, cfg, _ in specs)  # all advanced together


def test_streams_join_and_leave_between_steps():
    """A batch of 4 rows serves 16 streams that arrive at different steps; each row a stream
    leaves is taken by the next one, and every story is still the one it gets alone."""
    model = small_model()
    specs = stream_specs()
    alone = [run_alone(model, *spec) for spec in specs]
    engine = Engine(model, max_batch=4)
    streams, arrivals, step = [], list(specs), 0
    while arrivals or not engine.idle:
        if arrivals and step % 3 == 0:  # a newcomer every third step, into a running batch
            p, cfg, seed = arrivals.pop(0)
            streams.append(engine.add(Stream(p, cfg, make_generator(seed))))
        engine.step()
        assert len(engine.live) <= 4
        step += 1
    assert [s.tokens for s in streams] == alone
    assert all(s.finished == "length" for s in streams)


@pytest.mark.parametrize("ladder", LADDER)
def test_the_cache_writes_the_same_stories_as_recomputing_every_step(ladder):
    model = small_model(ladder=ladder)
    specs = stream_specs(8)
    for use_cache in (True, False):
        engine = Engine(model, max_batch=8, use_cache=use_cache)
        streams = [engine.add(Stream(p, cfg, make_generator(seed))) for p, cfg, seed in specs]
        engine.run()
        if use_cache:
            cached = [s.tokens for s in streams]
    assert [s.tokens for s in streams] == cached  # the window slides past block_size in both


def test_bf16_logits_of_a_row_agree_alone_or_batched():
    """Under bf16 autocast a row's logits in a batch of rows at other positions are within a
    stated tolerance (0.05) of its logits alone; in fp32 within 1e-5."""
    model = small_model()
    torch.manual_seed(2)
    seqs = [torch.randint(1, VOCAB, (n,)) for n in (2, 7, 11, 4)]
    for precision, tolerance in (("fp32", 1e-5), ("bf16", 0.05)):
        with torch.inference_mode(), autocast(precision, torch.device("cpu")):
            cache = KVCache(model.config, batch=len(seqs))
            for row, seq in enumerate(seqs):
                model(seq[None, :-1], cache=cache.rows(row, row + 1))
            batched = model(torch.stack([s[-1:] for s in seqs]), cache=cache)[0][:, -1].float()
            for row, seq in enumerate(seqs):
                alone = model(seq[None])[0][0, -1].float()
                assert (batched[row] - alone).abs().max() < tolerance, (precision, row)


def test_bad_settings_are_refused_before_a_stream_joins(tiny_run):
    model, tok, _ = load(tiny_run, device="cpu")
    engine = Engine(model, tok, max_batch=2)
    for bad in (dict(top_p=0.0), dict(temperature=-1.0), dict(top_k=0), dict(max_new_tokens=-1)):
        with pytest.raises(UserError):
            engine.stream("Once", SampleConfig(**bad))
    with pytest.raises(UserError, match="'#'"):
        engine.stream("Once #", SampleConfig())
    assert engine.idle


def test_a_stream_keeps_its_prompt_as_the_model_reads_it(tiny_run):
    model, tok, _ = load(tiny_run, device="cpu")
    s = Engine(model, tok).stream("\u201cI like\u00a0", SampleConfig())  # typographic quote, odd space
    assert s.prompt == '"I like ' and s.seq == [tok.eos_id] + tok.encode('"I like ')
    assert generate(model, tok, "\u201cI like", max_new_tokens=3, seed=1).startswith('"I like')


def test_the_waiting_queue_is_bounded_and_a_cancelled_stream_frees_its_row():
    model = small_model()
    engine = Engine(model, max_batch=1, max_waiting=1)
    cfg = SampleConfig(max_new_tokens=1000, stop_at_eos=False)
    first = engine.add(Stream([1, 2], cfg, make_generator(0)))
    engine.step()
    second = engine.add(Stream([3], SampleConfig(max_new_tokens=3, stop_at_eos=False), make_generator(1)))
    with pytest.raises(Full):
        engine.add(Stream([4], cfg, make_generator(2)))
    engine.step()
    assert engine.live == [first] and list(engine.waiting) == [second]
    engine.cancel(first)
    engine.step()  # the cancelled stream leaves and the waiting one takes its row in the same step
    assert first.finished == "cancelled" and engine.live == [second] and len(second.tokens) == 1
    engine.run()
    assert second.tokens == run_alone(model, [3], second.cfg, 1)


def test_a_failing_step_ends_its_batch_and_the_server_loop_keeps_serving(capsys):
    import threading

    model = small_model()
    engine = Engine(model, max_batch=4)
    cfg = SampleConfig(max_new_tokens=5, stop_at_eos=False)
    real, calls = engine._logits, []

    def fails_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real()
    engine._logits = fails_once
    stop = threading.Event()
    loop = threading.Thread(target=engine.serve_forever, args=(stop,))
    loop.start()
    try:
        first = engine.add(Stream([1, 2], cfg, make_generator(0)))
        for _ in range(200):
            if first.finished:
                break
            stop.wait(0.01)
        second = engine.add(Stream([1, 2], cfg, make_generator(0)))
        for _ in range(200):
            if second.finished:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        loop.join(5)
    assert first.finished == "error" and not loop.is_alive()
    assert second.finished == "length" and second.tokens == run_alone(model, [1, 2], cfg, 0)
    assert "a step failed (RuntimeError: a bug)" in capsys.readouterr().err


def test_notify_tells_admission_pieces_and_the_end(tiny_run):
    model, tok, _ = load(tiny_run, device="cpu")
    engine = Engine(model, tok)
    events = []
    s = engine.stream("Once", SampleConfig(max_new_chars=12, seed=3))
    s.notify = lambda kind, value: events.append((kind, value))
    engine.add(s)
    engine.run()
    assert events[0] == ("admitted", None) and events[-1] == ("done", s.finished)
    assert "".join(v for k, v in events if k == "piece") == s.text and len(s.text) <= 12


def test_generate_batch_equals_generate_one_at_a_time(tiny_run):
    model, tok, _ = load(tiny_run, device="cpu")
    prompts = ["Once upon a time", "Tom", "", "Lily had a"] * 4
    together = generate_batch(model, tok, prompts, max_new_tokens=40, seed=5)
    assert together == [generate(model, tok, p, max_new_tokens=40, seed=5 + i) for i, p in enumerate(prompts)]
    assert generate_batch(model, tok, ["Tom", "Tom"], seeds=[1, 1], max_new_tokens=30) == \
        [generate(model, tok, "Tom", max_new_tokens=30, seed=1)] * 2


def test_generation_leaves_a_training_model_in_training_mode(tiny_run):
    model, tok, _ = load(tiny_run, device="cpu")
    model.train()
    generate(model, tok, "Once", max_new_tokens=5)
    generate_batch(model, tok, ["Once", "Tom"], max_new_tokens=5)
    with pytest.raises(UserError):
        generate(model, tok, "Once #")
    assert model.training


def test_windows_that_slide_together_are_refilled_in_one_forward(monkeypatch):
    """Streams with prompts of the same length slide at the same steps; their windows are
    refilled together through a scratch cache, and the stories are still the ones alone."""
    model = small_model()
    specs = [([1 + i % 5, 2, 3], SampleConfig(max_new_tokens=40, stop_at_eos=False, **SETTINGS[i]), i)
             for i in range(6)]
    alone = [run_alone(model, *spec) for spec in specs]
    import minigpt.engine as engine_module

    shared = []
    real = engine_module._scratch
    monkeypatch.setattr(engine_module, "_scratch",
                        lambda cache, rows: shared.append(len(rows)) or real(cache, rows))
    engine = Engine(model, max_batch=8)
    streams = [engine.add(Stream(p, cfg, make_generator(seed))) for p, cfg, seed in specs]
    engine.run()
    assert shared and max(shared) == 6  # all six refilled in one forward, each time they slid
    assert [s.tokens for s in streams] == alone
