"""MiniGPT: a small character-level GPT that learns to write TinyStories-style children's stories.

The public API:

    from minigpt import load, generate, evaluate, train, ModelConfig, TrainConfig, SampleConfig

    model, tokenizer, config = load("bundled")        # the story model shipped in the package
    run = train(ModelConfig(n_layers=2), TrainConfig(data=["stories.txt"], max_steps=200), "runs/demo")
    model, tokenizer, config = load(run)               # a run directory, model directory or Hub id
    save_pretrained(model, tokenizer, "my-model")     # config.json, model.safetensors, tokenizer.json
    save_pretrained(model, tokenizer, "my-hf", format="transformers")  # for HuggingFace transformers
    print(generate(model, tokenizer, "Once upon a time", max_new_tokens=300, temperature=0.8))
    stories = generate_batch(model, tokenizer, ["Tom", "Lily"] * 8, seed=1)  # 16 at once
    print(evaluate(model, tokenizer, "held-out.txt"))   # nats/char, bits/char, perplexity

Looking inside (minigpt.introspect, pictures in minigpt.viz):

    maps, chars = attention_maps(model, tokenizer, "Once upon a time")  # (layers, heads, T, T)
    rows = next_char_probabilities(model, tokenizer, "Once upon a ti")   # top next characters
    stages = summary(model)                                              # shapes and parameters
    everything = introspect.inspect(model, tokenizer, "Once upon a ti")  # all of it: the web page's view
"""

__version__ = "0.1.0"

from .api import evaluate, generate, generate_batch, load  # noqa: E402
from .config import ModelConfig, SampleConfig, TrainConfig  # noqa: E402
from .errors import UserError  # noqa: E402
from .introspect import attention_maps, next_char_probabilities, summary  # noqa: E402
from .model import MiniGPT  # noqa: E402
from .pretrained import from_pretrained, save_pretrained  # noqa: E402
from .tokenizer import BPETokenizer, CharTokenizer, WordTokenizer, load_tokenizer  # noqa: E402
from .train import train  # noqa: E402

__all__ = ["BPETokenizer", "CharTokenizer", "MiniGPT", "ModelConfig", "SampleConfig", "TrainConfig",
           "UserError", "WordTokenizer", "attention_maps", "evaluate", "from_pretrained", "generate",
           "generate_batch",
           "load", "load_tokenizer", "next_char_probabilities", "save_pretrained", "summary", "train",
           "__version__"]
