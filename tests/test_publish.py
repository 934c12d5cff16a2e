"""Issue 23, finding 6: a result set is published whole. A kill at any step of publication (emulated by
a forked child that ends with os._exit, like SIGKILL: no cleanup runs) leaves the directory with the
complete old set or the complete new set; what it leaves beside is cleaned by the next run; Ctrl-C's
message is true; the sweep's sweep.nc + sweep.png pair likewise."""

import os
import signal
from pathlib import Path

import pytest

from sgd_dmft import publish, run
from sgd_dmft.results import write_result_set

from clitools import cli as _cli, one_line_error as _one_line_error

OLD = ("theory.nc", "simulation.nc", "figure.png", "summary.json")
NEW = ("theory.nc", "simulation.nc", "summary.json")  # figure.png of the old set must go


def _put(tag):
    def w(p):
        Path(p).write_text(tag)
    return w


def _old_set(out):
    out.mkdir()
    for n in OLD:
        (out / n).write_text("old")
    (out / "my_config.toml").write_text("mine")  # not part of a result set: kept
    (out / "cache").mkdir()
    (out / "cache" / "entry").write_text("cached")


def _state(out, mine=True):
    """'old' or 'new' when ``out`` holds exactly one complete set (and, with ``mine``, the user's entries,
    which a kill between carrying them and the exchange leaves beside until the next run); else fail."""
    files = {p.name: p.read_text() for p in out.iterdir() if p.is_file() and p.name != "my_config.toml"}
    if mine:
        assert (out / "my_config.toml").read_text() == "mine"
        assert (out / "cache" / "entry").read_text() == "cached"
    if set(files) == set(OLD) and set(files.values()) == {"old"}:
        return "old"
    assert set(files) == set(NEW) and set(files.values()) == {"new"}, files
    return "new"


def _killed_child(out, where, exchange=True):
    """Fork a child that publishes the new set and dies (os._exit, no cleanup) at ``where``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            if not exchange:
                publish._exchange = lambda a, b: False
            n = [0]

            def writer(p):
                n[0] += 1
                if where == f"write{n[0]}":
                    os._exit(9)
                Path(p).write_text("new")

            write_result_set(out, {k: writer for k in NEW},
                             step=lambda name: os._exit(9) if name == where else None)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "rename-aside"])
@pytest.mark.parametrize("where", ["write1", "write3", "lock", "carried", "exchanged", "moved aside", "never"])
def test_kill_at_each_step_leaves_one_whole_set(tmp_path, where, exchange):
    out = tmp_path / "o"
    _old_set(out)
    killed = _killed_child(out, where, exchange) == 9
    assert killed == (where not in ("never", "exchanged" if not exchange else "moved aside"))
    if killed and where.startswith("write"):
        assert len(list(tmp_path.iterdir())) == 2, "a killed run leaves its staging directory (cleaned below)"
    if killed and where == "moved aside":  # the fallback's gap between its two renames: no set at all
        assert not out.exists()
    else:
        before = _state(out, mine=False)
    publish.clean_stale(out)  # what the next run into the same --out does first (check_out_dir)
    after = _state(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert after == ("old" if killed and where != "exchanged" else "new")
    if where != "moved aside":
        assert before == after


def test_next_cli_run_cleans_staging_of_a_killed_run(tmp_path, monkeypatch):
    out = tmp_path / "o"
    _old_set(out)
    assert _killed_child(out, "write3") == 9
    legacy = tmp_path / ".o.abcd1234.staging"  # what earlier versions left
    legacy.mkdir()
    assert len(list(tmp_path.iterdir())) == 3
    monkeypatch.setattr(run, "run_theory", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    (tmp_path / "c.toml").write_text("[problem]\nmodel = 'logistic'\n")
    r = _cli("solve", tmp_path / "c.toml", "--out", out)
    _one_line_error(r, 130, "interrupted; nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "o"]
    assert _state(out) == "old"


def test_ctrl_c_during_publication_is_held_and_reported_true(tmp_path):
    out = tmp_path / "o"
    _old_set(out)
    with pytest.raises(KeyboardInterrupt) as ei:
        write_result_set(out, {k: _put("new") for k in NEW},
                         step=lambda name: os.kill(os.getpid(), signal.SIGINT) if name == "carried" else None)
    assert ei.value.published == out
    assert _state(out) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_ctrl_c_message_after_publication(tmp_path, monkeypatch):
    from sgd_dmft import results

    real = results.write_result_set

    def then_ctrl_c(*a, **k):
        return real(*a, **k, step=lambda name: os.kill(os.getpid(), signal.SIGINT) if name == "lock" else None)

    monkeypatch.setattr(results, "write_result_set", then_ctrl_c)
    (tmp_path / "c.toml").write_text("[problem]\nmodel = 'logistic'\n[dynamics]\nt_max = 0.1\ndt = 0.05\n"
                                     "[solver]\npaths = 40\nreplicas = 2\n")
    r = _cli("solve", tmp_path / "c.toml", "--out", tmp_path / "o")
    _one_line_error(r, 130, "interrupted; the new result set in", "written completely")
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"result.nc", "figure.png"}


def test_failed_sweep_png_keeps_the_previous_pair(tmp_path, monkeypatch):
    from sgd_dmft import sweep

    out = tmp_path / "sw"
    out.mkdir()
    for n in ("sweep.nc", "sweep.png"):
        (out / n).write_text("old")
    (out / "cache").mkdir()
    monkeypatch.setattr(sweep.gathering, "write_sweep", lambda ds, p, cfg: Path(p).write_text("new"))

    def no_space(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sweep.gathering, "plot_sweep", no_space)
    with pytest.raises(OSError):
        sweep.publish_sweep(out, None, None, None)
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == {"sweep.nc": "old", "sweep.png": "old"}
    monkeypatch.setattr(sweep.gathering, "plot_sweep", lambda th, sim, p: Path(p).write_text("new"))
    (out / "sweep_sim.nc").write_text("old")  # a stale simulation file of an earlier --simulate sweep goes
    sweep.publish_sweep(out, None, None, None)
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == {"sweep.nc": "new", "sweep.png": "new"}
    assert (out / "cache").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["sw"]


def test_out_through_dotdot_symlink_and_working_directory(tmp_path, monkeypatch):
    out = tmp_path / "o"
    _old_set(out)
    (out / "sub").mkdir()
    monkeypatch.chdir(out / "sub")
    write_result_set("..", {k: _put("new") for k in NEW})  # the set goes into o, not into o/sub
    assert _state(out) == "new" and Path.cwd() == out / "sub"  # the working directory follows
    (tmp_path / "link").symlink_to(out)
    write_result_set(tmp_path / "link", {"result.nc": _put("x")})
    assert (tmp_path / "link").is_symlink() and (out / "result.nc").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "o"]
