"""One home for every value: the YAML under conf/ gives a run's values, and a schema holds a default
only for a field no YAML of its group gives (which that YAML then does not restate). Every option of
every config group composes and validates; cache keys of existing configurations do not change."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from laser.configs import SCHEMAS, RolloutConfig, SelfRewardConfig, register_schemas, schema_fields, validate
from laser.data.sources import dataset_key
from laser.models.base_policy import config_key
from laser.models.factory import warmup_key
from laser.utils.compose import CONF_DIR

from helpers import char_tokenizer, compose_train

ROOT = CONF_DIR.parent
PATHS = ["paths.root_dir=.", "paths.output_dir=."]
# what an option needs on top to validate (a value its YAML leaves to the user, or a matching choice)
NEEDS = {
    "model=hf": ["model.name_or_path=org/name", "model.self_reward_token=x"],
    "data=math": ["data.files.train=train.jsonl", "reward=math_verify", "model.base_sft.steps=0"],
}


def group_options() -> Iterator[tuple[str, str]]:
    """(group, override selecting one of its options) for every YAML of every group under conf/
    (nested groups such as algo/self_reward included) and every sweep under sweeps/."""
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        group = path.parent.relative_to(CONF_DIR).as_posix()
        if group == ".":
            continue  # a primary config
        appended = group in ("experiment",)  # not in train.yaml's defaults list
        yield group, f"{'+' if appended else ''}{group}={path.stem}"
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        yield "sweeps", f"+sweeps={path.stem}"


OPTIONS = list(group_options())
SCHEMA_OPTIONS = [(g, o) for g, o in OPTIONS if g.split("/")[0] in SCHEMAS]


def real_default(f: dataclasses.Field):
    """The field's default, or MISSING where the YAML is its home."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return MISSING


def plain(value):
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return list(value) if isinstance(value, tuple) else value


def bare(schema: type) -> dict:
    """A schema's keys with no value at all (nested blocks expanded): composed in its place, it
    leaves a value exactly where a YAML gives one."""
    hints = typing.get_type_hints(schema)
    return {
        f.name: bare(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else MISSING
        for f in dataclasses.fields(schema)
    }


def compose_bare(config_name: str, overrides: list[str]) -> DictConfig:
    """`config_name` composed with every schema's defaults taken away (see `bare`)."""
    store = ConfigStore.instance()
    try:
        for group, schema in SCHEMAS.items():
            store.store(group=group, name="schema", node=bare(schema))
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=[*PATHS, *overrides])
    finally:
        register_schemas()


def yaml_values(cfg: DictConfig, group: str) -> Iterator[tuple[str, dataclasses.Field, object]]:
    """(key, schema field, value) of every key of block `group` that the composed YAML gives a
    value, where the field has a default of its own."""
    for key, f in schema_fields({group: SCHEMAS[group]}):
        default = real_default(f)
        if isinstance(default, str) and default == MISSING:
            continue
        parent, leaf = key.rsplit(".", 1)
        node = OmegaConf.select(cfg, parent)
        if node is None or OmegaConf.is_missing(node, leaf):
            continue
        yield key, f, plain(OmegaConf.select(cfg, key))


def second_homes(cfg: DictConfig, groups, where: str) -> list[str]:
    """Where the YAML gives a value to a field that holds a default in its schema."""
    found = []
    for group in groups:
        for key, f, value in yaml_values(cfg, group):
            default = plain(real_default(f))
            owner = next(s for s in _classes(SCHEMAS[group]) if f in dataclasses.fields(s)).__name__
            head = f"{where} (composed) sets {key}={value!r}"
            if value == default:
                found.append(f"{head}, which {owner}.{f.name} already defaults to: drop it from the YAML")
            else:
                found.append(
                    f"{head} but {owner}.{f.name} defaults to {default!r}: a schema holds no second "
                    f"default; make the field MISSING (and give it in every {group} option) or give "
                    "no YAML value"
                )
    return found


def _classes(schema: type) -> Iterator[type]:
    yield schema
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _classes(hints[f.name])


# -- schema defaults against the YAML -----------------------------------------------------------


@pytest.mark.parametrize(("group", "option"), SCHEMA_OPTIONS, ids=[o for _, o in SCHEMA_OPTIONS])
def test_no_option_of_a_group_gives_a_value_its_schema_defaults(group: str, option: str) -> None:
    found = second_homes(
        compose_bare("train", [option]), [group.split("/")[0]], f"conf/{group}/{option.split('=')[1]}.yaml"
    )
    assert not found, "\n".join(found)


def test_the_default_run_takes_no_value_from_a_second_home() -> None:
    found = second_homes(compose_bare("train", []), SCHEMAS, "conf/train.yaml")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("config_name", ["eval", "infer"])
def test_the_evaluation_configs_agree_with_the_schemas(config_name: str) -> None:
    """eval.yaml and infer.yaml take the rollout block (its schema's) and mirror a few self-reward
    settings of a training run (null: the policy's own); a value they give equals the schema's."""
    cfg = compose_bare(
        config_name, ["ckpt_path=x", "problems=p.jsonl"] if config_name == "infer" else ["ckpt_path=x"]
    )
    found = second_homes(cfg, ["rollout"], f"conf/{config_name}.yaml")
    assert not found, "\n".join(found)
    composed = compose_real(config_name, ["ckpt_path=x"])
    OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RolloutConfig), composed.rollout))
    defaults = {f.name: real_default(f) for f in dataclasses.fields(SelfRewardConfig)}
    for key, value in composed.self_reward.items():
        assert key in defaults, f"conf/{config_name}.yaml: self_reward.{key} is no key of algo.self_reward"
        own = defaults[key]
        if value is not None and not (isinstance(own, str) and own == MISSING):
            assert value == own, f"conf/{config_name}.yaml: self_reward.{key}={value!r}, schema {own!r}"


def compose_real(config_name: str, overrides: list[str]) -> DictConfig:
    register_schemas()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=[*PATHS, *overrides])


# -- every option composes and validates --------------------------------------------------------


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[o for _, o in OPTIONS])
def test_every_option_composes_and_validates(tmp_path: Path, group: str, option: str) -> None:
    if group == "confidence":  # a group of the evaluation configs
        compose_real("eval", [option, "ckpt_path=x"])
        return
    cfg = compose_train(tmp_path, [option, *NEEDS.get(option, [])], debug=None)
    validate(cfg, check_sources=False)


def test_a_block_built_in_python_names_what_it_lacks() -> None:
    with pytest.raises(ValueError, match=r"algo\.self_reward\.token is required but not set: the YAML"):
        SelfRewardConfig()


# -- cache keys ---------------------------------------------------------------------------------

# (warm-up key, data key) computed before the schemas' defaults moved to conf/ (commit 2bf9ac1):
# the cached base policies of these runs stay valid
PINNED_KEYS = {
    "default": ([], "000206b35bb15632", "934b88a7537f2246"),
    "showcase": (["+experiment=showcase"], "9c06d56fb6dfcd4c", "2ba134839e48f33f"),
    "debug": (["debug=fast"], "c5ad5bcfa503814e", "4ede866c126a5e8e"),
    "showcase_debug": (["+experiment=showcase", "debug=fast"], "932ee94e99b57a9b", "8ee8d1ac4d811f4a"),
    "self_check": (["+experiment=self_check"], "93c9c57bd9c60eb9", "f82f374ca66e6e4c"),
    "answer_choices": (["+experiment=answer_choices"], "2be7eca00a4ef481", "7e798ce2e41c9682"),
    "hf_warm_up": (
        ["model=hf", *NEEDS["model=hf"], "model.base_sft.steps=10", "model.base_sft.lr=3e-3"],
        "0acc540b7cb7573c",
        "934b88a7537f2246",
    ),
    "files": (
        [
            "data=math",
            "data.files.train=/tmp/pin/train.jsonl",
            "data.files.eval=0.5",
            *NEEDS["data=math"][1:],
        ],
        "7ff3979f3b9498fc",
        "a4f965858c1859d8",
    ),
}


@pytest.mark.parametrize("name", PINNED_KEYS)
def test_the_cache_keys_of_existing_configurations_are_unchanged(tmp_path: Path, name: str) -> None:
    overrides, warm_up, data = PINNED_KEYS[name]
    cfg = compose_train(tmp_path, overrides, debug=None)
    run = validate(cfg, check_sources=False)
    key = dataset_key(run.data)
    assert config_key(key) == data
    assert warmup_key(run.model, char_tokenizer(), key, run.model.base_sft.seed_for(cfg.seed)) == warm_up
