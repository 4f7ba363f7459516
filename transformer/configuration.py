"""A run of all-MiniLM-L6-v2 on spiking circuits (``experiments.spiking_minilm``), as one typed configuration.

:class:`RunConfig` holds what a corpus run needs besides its pool of workers: the sentences, the
stages on spikes and their codes, the layers, seeds, parameter overrides, the heads' astrocyte,
batching, length buckets and the device. Every value is checked when a configuration is made
(ValueError with one line); every block's parameters are computed once per run
(:attr:`RunConfig.params`); :meth:`RunConfig.to_record` and :meth:`RunConfig.from_record` write and
read the ``configuration`` of a run's params.json, which ``--resume``, ``benchmarks.frontier`` and
the tutorials read back (records of earlier versions included).
"""

import dataclasses
import functools
from dataclasses import dataclass, field

from circuits.runners import check_device
from models.astrocytes import ASTROCYTE_MODELS
from models.encoders import CODES
from transformer import minilm
from circuits.exact_kernel import check_exact_protocol
from circuits.exact_latency import KEY_CODES, check_key_code
from transformer.executors import ALL_STAGES, DEFAULT_CODE, DEFAULT_KEY_CODE, parse_codes, parse_stages
from transformer.heads import MAX_TOKENS
from transformer.spiking import HEAD_OPTIONS, block_parameters, check_texts

#: What every run's configuration records (``RunConfig.to_record``); ``codes``, ``buckets``,
#: ``heads`` and ``ffn_units`` may be missing (earlier versions, or not set).
RECORDED = ("texts", "spiking", "layers", "map_layer", "seed", "spike_seed", "overrides", "batch", "device",
            "threads", "options")
#: The heads' options that are fields of their own (in a record, inside ``options["head"]``).
HEAD_ASTROCYTE_OPTIONS = ("astrocyte", "block_astrocyte")
#: What crosses a stage boundary (``--boundaries``): spikes, the one network of cells from token to
#: embedding (``transformer.network``), or numbers, the chain of spiking stages joined by NumPy's
#: residual sums and LayerNorms (``transformer.forward``, ``transformer.executors``).
BOUNDARIES = ("spikes", "numpy")


def parse_layers(text, n_layers) -> tuple:
    """``--layers``: 'all' or comma-separated layer numbers; ValueError with one line otherwise."""
    if text.strip() == "all":
        return tuple(range(n_layers))
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--layers takes 'all' or layer numbers like 0,3, got {text!r}") from None
    if not layers or layers[0] < 0 or layers[-1] >= n_layers:
        raise ValueError(f"--layers must name layers in 0-{n_layers - 1}, got {text!r}")
    return tuple(layers)


def parse_buckets(text) -> tuple | None:
    """``--buckets``: comma-separated lengths or 'none'; ValueError with one line otherwise."""
    if text.strip() == "none":
        return None
    try:
        buckets = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"--buckets takes lengths like 16,32,64,128 or 'none', got {text!r}") from None
    if not buckets or buckets[0] < 1 or buckets[-1] > MAX_TOKENS:
        raise ValueError(f"--buckets must lie in 1-{MAX_TOKENS}, got {text!r}")
    return buckets


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ints(values) -> bool:
    return isinstance(values, (list, tuple)) and all(_is_int(v) and v >= 0 for v in values)


@dataclass(frozen=True)
class RunConfig:
    """A corpus run's configuration (``experiments.spiking_minilm``).

    Attributes
    ----------
    texts : tuple of str
        The sentences, in corpus order (each one's index seeds its circuits).
    stages : tuple of str
        The stages on spikes (``transformer.executors.ALL_STAGES``); recorded as ``spiking``.
    layers : tuple of int
        The layers whose stages run on spikes.
    map_layer : int
        The layer whose heads' attention maps are kept (first sentence).
    seed, spike_seed : int, int or None
        The seeds every circuit's seeds derive from (``transformer.executors.circuit_seed``).
    batch : int
        Sentences simulated together (of one length or bucket).
    device : str
        ``runtime`` or ``cpp_standalone`` (``circuits.runners.DEVICES``).
    threads : int
        OpenMP threads per circuit (cpp_standalone; 0: none).
    codes : dict
        Each stage's code, ``rate`` or ``latency`` (a stage not named:
        ``transformer.executors.DEFAULT_CODE``, as in ``SpikingExecutor``).
    overrides : dict
        Parameter overrides ``BLOCK.NAME -> value`` (``transformer.spiking.block_parameters``).
    buckets : tuple of int or None
        Length buckets (``circuits.protocol.bucket_length``; None: each sentence at its own length).
    astrocyte : str
        The heads' astrocyte process model (``models.astrocytes.ASTROCYTE_MODELS``).
    block_astrocyte : bool
        The negative control: the heads' astrocyte signals held at their mean over the reads.
    options : dict
        Per block builder options besides the astrocyte (default ``{"head": HEAD_OPTIONS}``); the
        heads' ``key_code`` on the latency code (default ``transformer.executors.DEFAULT_KEY_CODE``).
    heads, ffn_units : tuple of int or None, int or None
        The heads and FFN units on spikes (default all; small runs in tests and tutorials).
    boundaries : str
        What crosses the stage boundaries (:data:`BOUNDARIES`): ``spikes`` (every stage on spikes in
        the latency code with one-spike keys, all layers, heads and units) or ``numpy``.
    block_layernorm : bool
        The negative control of the LayerNorm astrocytes (``spikes`` only): their signal held at
        its mean over a sentence's tokens.
    """

    texts: tuple
    stages: tuple
    layers: tuple
    map_layer: int
    seed: int
    spike_seed: int | None
    batch: int
    device: str
    threads: int
    codes: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    buckets: tuple | None = None
    astrocyte: str = "minimal"
    block_astrocyte: bool = False
    options: dict = field(default_factory=lambda: {"head": dict(HEAD_OPTIONS)})
    heads: tuple | None = None
    ffn_units: int | None = None
    boundaries: str = "numpy"
    block_layernorm: bool = False

    def __post_init__(self):
        # Sequences as tuples and a code for every stage, so that equal runs compare equal however made.
        normal = {"texts": tuple(self.texts) if isinstance(self.texts, (list, tuple)) else self.texts,
                  "stages": tuple(self.stages) if isinstance(self.stages, (list, tuple)) else self.stages,
                  "layers": tuple(self.layers) if isinstance(self.layers, (list, tuple)) else self.layers,
                  "buckets": tuple(self.buckets) if isinstance(self.buckets, list) else self.buckets,
                  "heads": tuple(self.heads) if isinstance(self.heads, list) else self.heads}
        if isinstance(self.codes, dict):
            normal["codes"] = {s: DEFAULT_CODE for s in ALL_STAGES} | self.codes
            head = self.options.get("head") if isinstance(self.options, dict) else None
            if normal["codes"]["attention"] == "latency" and isinstance(head, dict) and "key_code" not in head:
                normal["options"] = {**self.options, "head": {**head, "key_code": DEFAULT_KEY_CODE}}
        for name, value in normal.items():
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        """ValueError with one line for the first unusable value (its record key and option named)."""
        head = self.options.get("head", {}) if isinstance(self.options, dict) else None
        checks = (   # (record key, option, value, what it must be, whether it is)
            ("texts", "--text/--texts", self.texts, "sentences (non-empty strings)",
             isinstance(self.texts, tuple) and self.texts and all(isinstance(t, str) and t.strip() for t in self.texts)),
            ("spiking", "--spiking", self.stages, f"stages among {', '.join(ALL_STAGES)}",
             isinstance(self.stages, tuple) and all(s in ALL_STAGES for s in self.stages)),
            ("codes", "--code", self.codes, f"a code ({' or '.join(CODES)}) per stage among {', '.join(ALL_STAGES)}",
             isinstance(self.codes, dict) and set(self.codes) == set(ALL_STAGES)
             and all(c in CODES for c in self.codes.values())),
            ("layers", "--layers", self.layers, "layer numbers (at least one)", _ints(self.layers) and len(self.layers) > 0),
            ("map_layer", "--map-layer", self.map_layer, "a layer number", _is_int(self.map_layer) and self.map_layer >= 0),
            ("seed", "--seed", self.seed, "an integer >= 0", _is_int(self.seed) and self.seed >= 0),
            ("spike_seed", "--spike-seed", self.spike_seed, "an integer >= 0 or none",
             self.spike_seed is None or (_is_int(self.spike_seed) and self.spike_seed >= 0)),
            ("overrides", "--set", self.overrides, "BLOCK.NAME -> value pairs",
             isinstance(self.overrides, dict) and all(isinstance(k, str) for k in self.overrides)),
            ("batch", "--batch", self.batch, "an integer >= 1", _is_int(self.batch) and self.batch >= 1),
            ("buckets", "--buckets", self.buckets, f"lengths in 1-{MAX_TOKENS} or none",
             self.buckets is None or (_ints(self.buckets) and len(self.buckets) > 0
                                      and 1 <= min(self.buckets) and max(self.buckets) <= MAX_TOKENS)),
            ("threads", "--threads", self.threads, "an integer >= 0", _is_int(self.threads) and self.threads >= 0),
            ("astrocyte", "--astrocyte", self.astrocyte, f"one of {', '.join(ASTROCYTE_MODELS)}",
             self.astrocyte in ASTROCYTE_MODELS),
            ("block_astrocyte", "--block-astrocyte", self.block_astrocyte, "true or false",
             isinstance(self.block_astrocyte, bool)),
            ("options", "options", self.options, "per block builder options with the heads', the astrocyte's apart",
             isinstance(head, dict) and all(isinstance(o, dict) for o in self.options.values())
             and not set(head) & set(HEAD_ASTROCYTE_OPTIONS)),
            ("key_code", "--key-code", head.get("key_code") if isinstance(head, dict) else None,
             f"one of {', '.join(KEY_CODES)}, and only with the latency code's heads",
             not isinstance(head, dict) or "key_code" not in head
             or (head["key_code"] in KEY_CODES and self.codes.get("attention") == "latency")),
            ("heads", "heads", self.heads, "head numbers or none", self.heads is None or _ints(self.heads)),
            ("ffn_units", "ffn_units", self.ffn_units, "an integer >= 1 or none",
             self.ffn_units is None or (_is_int(self.ffn_units) and self.ffn_units >= 1)),
            ("boundaries", "--boundaries", self.boundaries,
             f"one of {', '.join(BOUNDARIES)}; spikes with every stage, layer, head and unit on spikes in the "
             "latency code with one-spike keys", self.boundaries == "numpy" or (
                 self.boundaries == "spikes" and self.network_eligible)),
            ("block_layernorm", "--block-astrocyte layernorm", self.block_layernorm,
             "false, or true with --boundaries spikes (the LayerNorms run on astrocytes only there)",
             self.block_layernorm is False or (self.block_layernorm is True and self.boundaries == "spikes")),
        )
        for key, option, value, wanted, good in checks:
            if not good:
                raise ValueError(f"{key} ({option}) must be {wanted}, got {value!r}")
        check_device(self.device, self.threads)

    @classmethod
    def from_args(cls, args, texts, overrides) -> "RunConfig":
        """A new run's configuration from ``experiments.spiking_minilm``'s parsed command line, with
        its sentences and parameter overrides as the experiment read them (``--texts``, ``--params``
        and ``--set``: files and option syntax are the experiments' layer); every block's
        parameters are checked here, before anything runs."""
        n_layers = minilm.load_model().n_layers
        layers = parse_layers(args.layers, n_layers)
        map_layer = args.map_layer if args.map_layer is not None else layers[0]
        if not 0 <= map_layer < n_layers:
            raise ValueError(f"--map-layer must be in 0-{n_layers - 1}, got {map_layer}")
        codes = parse_codes(args.code)
        if args.key_code is not None:
            check_key_code(args.key_code, codes["attention"])
        keys = {"key_code": args.key_code} if args.key_code is not None else {}
        blocked = {"all": ("heads", "layernorm"), None: ()}.get(args.block_astrocyte, (args.block_astrocyte,))
        config = cls(texts=check_texts(texts), stages=parse_stages(args.spiking), layers=layers, map_layer=map_layer,
                     seed=args.seed, spike_seed=args.spike_seed, batch=args.batch, device=args.device,
                     threads=args.threads, codes=codes, overrides=overrides,
                     buckets=parse_buckets(args.buckets), astrocyte=args.astrocyte,
                     block_astrocyte="heads" in blocked, options={"head": {**HEAD_OPTIONS, **keys}})
        # Spikes across every boundary wherever the run can be one network, unless --boundaries says.
        boundaries = args.boundaries or ("spikes" if config.network_eligible else "numpy")
        config = dataclasses.replace(config, boundaries=boundaries, block_layernorm="layernorm" in blocked)
        # Checked before anything runs or a run folder is made: every block's parameters, and the
        # heads' protocol on their code.
        if "attention" in config.stages:
            check_exact_protocol(config.params["head"], config.codes["attention"],
                                 config.key_code if config.codes["attention"] == "latency" else "regular")
        return config

    @property
    def network_eligible(self) -> bool:
        """Whether the run can be one network of cells (``boundaries="spikes"``): every stage of every
        layer, every head and unit on spikes, all in the latency code, the heads with one-spike keys."""
        n_layers = minilm.load_model().n_layers
        return (self.stages == ALL_STAGES and self.layers == tuple(range(n_layers)) and self.heads is None
                and self.ffn_units is None and isinstance(self.codes, dict)
                and all(c == "latency" for c in self.codes.values()) and self.key_code == "latency")

    @functools.cached_property
    def params(self) -> dict:
        """Every block's ParameterSet (``transformer.spiking.block_parameters``), computed once per run."""
        return block_parameters(self.overrides, self.astrocyte, self.codes["attention"], self.key_code)

    @property
    def key_code(self) -> str:
        """The latency heads' key code (``circuits.exact_latency.KEY_CODES``; recorded in the heads'
        options whenever they are on the latency code: a record without it ran the regular keys)."""
        return self.options.get("head", {}).get("key_code", DEFAULT_KEY_CODE)

    @property
    def circuit_options(self) -> dict:
        """Per block builder options, the heads' with their astrocyte (``SpikingExecutor``'s ``options``)."""
        head = {**self.options.get("head", {}), "astrocyte": self.astrocyte, "block_astrocyte": self.block_astrocyte}
        return {**self.options, "head": head}

    def to_record(self) -> dict:
        """The ``configuration`` params.json records (JSON-ready; read back by :meth:`from_record`)."""
        record = {"texts": list(self.texts), "spiking": list(self.stages), "codes": dict(self.codes),
                  "layers": list(self.layers), "map_layer": self.map_layer, "seed": self.seed,
                  "spike_seed": self.spike_seed, "overrides": dict(self.overrides), "batch": self.batch,
                  "buckets": None if self.buckets is None else list(self.buckets), "device": self.device,
                  "threads": self.threads, "options": self.circuit_options}
        if self.heads is not None:
            record["heads"] = list(self.heads)
        if self.ffn_units is not None:
            record["ffn_units"] = self.ffn_units
        record.update(boundaries=self.boundaries, block_layernorm=self.block_layernorm)
        return record

    @classmethod
    def from_record(cls, record) -> "RunConfig":
        """A configuration as params.json recorded it (:meth:`to_record`), or as earlier versions did:
        without ``codes`` (before the latency code: rate everywhere), ``buckets`` (before length
        buckets: each sentence at its own length) or the latency heads' ``key_code`` (before the
        one-spike keys: regular keys). ValueError with one line if it is not one."""
        missing = [key for key in RECORDED if key not in record] if isinstance(record, dict) else list(RECORDED)
        if missing:
            raise ValueError(f"no whole configuration of a spiking_minilm run (no {', '.join(missing)})")
        options = record["options"]
        head = options.get("head") if isinstance(options, dict) else None
        if not isinstance(head, dict) or not set(HEAD_ASTROCYTE_OPTIONS) <= set(head):
            raise ValueError(f"options must hold the heads' {' and '.join(HEAD_ASTROCYTE_OPTIONS)}, got {options!r}")
        head = dict(head)
        astrocyte, block_astrocyte = (head.pop(name) for name in HEAD_ASTROCYTE_OPTIONS)
        codes = record.get("codes", {s: "rate" for s in ALL_STAGES})
        if isinstance(codes, dict) and codes.get("attention") == "latency":
            head.setdefault("key_code", "regular")        # recorded before the one-spike keys
        return cls(texts=record["texts"], stages=record["spiking"], layers=record["layers"],
                   map_layer=record["map_layer"], seed=record["seed"], spike_seed=record["spike_seed"],
                   batch=record["batch"], device=record["device"], threads=record["threads"],
                   codes=codes, overrides=record["overrides"], buckets=record.get("buckets"),
                   astrocyte=astrocyte, block_astrocyte=block_astrocyte, options={**options, "head": head},
                   heads=record.get("heads"), ffn_units=record.get("ffn_units"),
                   boundaries=record.get("boundaries", "numpy"), block_layernorm=record.get("block_layernorm", False))
