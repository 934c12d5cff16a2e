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


@pytest.fixture
def sigint():
    """``sigint(handler)`` sets SIGINT's handler for the test (the process's own is put back after). The Ctrl-C
    tests set Python's default (KeyboardInterrupt): a test process started in the background of a
    non-interactive shell (``make test &``) inherits SIGINT ignored, and a held Ctrl-C is rightly handed to
    that disposition, so nothing was raised ("DID NOT RAISE")."""
    put, old = signal.signal, signal.getsignal(signal.SIGINT)
    yield lambda handler: put(signal.SIGINT, handler)
    put(signal.SIGINT, old)


def _ctrl_c_at(where, seen):
    """A step hook: Ctrl-C at step ``where``, raised in this thread (its handler has run when raise_signal
    returns; a process-wide os.kill may be taken by another thread), then ``where`` noted in ``seen``:
    noted means the Ctrl-C was held, not raised inside the step."""
    def step(name):
        if name == where:
            signal.raise_signal(signal.SIGINT)
            seen.append(name)
    return step


def test_ctrl_c_during_publication_is_held_and_reported_true(tmp_path, sigint):
    sigint(signal.default_int_handler)
    out = tmp_path / "o"
    _old_set(out)
    seen = []
    with pytest.raises(KeyboardInterrupt) as ei:
        write_result_set(out, {k: _put("new") for k in NEW}, step=_ctrl_c_at("carried", seen))
    assert seen == ["carried"]  # held: publication went on past the Ctrl-C, which came after it
    assert ei.value.published == out
    assert _state(out) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_ctrl_c_ignored_by_the_process_stays_ignored(tmp_path, sigint):
    sigint(signal.SIG_IGN)  # e.g. a background job of a non-interactive shell
    out = tmp_path / "o"
    _old_set(out)
    seen = []
    write_result_set(out, {k: _put("new") for k in NEW}, step=_ctrl_c_at("carried", seen))
    assert seen == ["carried"] and _state(out) == "new"
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_ctrl_c_while_the_old_set_is_removed_is_reported_true(tmp_path, monkeypatch, sigint):
    from sgd_dmft import result_sets

    sigint(signal.default_int_handler)
    out = tmp_path / "o"
    _old_set(out)
    real = result_sets.shutil.rmtree

    def ctrl_c_then_rmtree(path, **kw):  # after the exchange the staging directory holds the old set
        signal.raise_signal(signal.SIGINT)
        real(path, **kw)

    monkeypatch.setattr(result_sets.shutil, "rmtree", ctrl_c_then_rmtree)
    with pytest.raises(KeyboardInterrupt) as ei:
        write_result_set(out, {k: _put("new") for k in NEW})
    assert getattr(ei.value, "published", None) == out and _state(out) == "new"


def test_ctrl_c_while_the_handlers_are_put_back_leaves_none_holding(monkeypatch, sigint):
    sigint(signal.default_int_handler)
    term, real, fired = signal.getsignal(signal.SIGTERM), signal.signal, []

    def put_back(s, handler):  # a Ctrl-C just after SIGINT's own handler is back (SIGTERM's not yet)
        old = real(s, handler)
        if s == signal.SIGINT and handler is signal.default_int_handler and not fired:
            fired.append(s)
            signal.raise_signal(signal.SIGINT)
        return old

    monkeypatch.setattr(signal, "signal", put_back)
    with pytest.raises(KeyboardInterrupt):
        with publish.held_signals():
            pass
    assert fired and signal.getsignal(signal.SIGTERM) == term
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_message_after_publication(tmp_path, monkeypatch, sigint):
    from sgd_dmft import results

    sigint(signal.default_int_handler)
    real = results.write_result_set

    def then_ctrl_c(*a, **k):
        return real(*a, **k, step=_ctrl_c_at("lock", []))

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
