"""The python grader's process (run as a script with `python -I`): it reads its job from stdin, fences
itself in — resource limits, its own empty network namespace, an unprivileged user, an audit hook —
and only then runs the user's source on each case in turn, writing one JSON line per case, as soon as
it has it, to the pipe it was given (so a case that hangs or kills the process costs only itself).

Imports only the standard library: this file must not pull tuneforge (or anything else) into the
process whose code nobody reviewed."""

import ctypes
import json
import math
import os
import resource
import sys
import traceback

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
NOBODY = 65534  # the conventional unprivileged uid/gid; used only when started as root
_BLOCKED_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.kill",
        "os.killpg",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.call_function",
        "ctypes.cdata",
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
    }
)
_PATH_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "os.chdir", "shutil.copyfile"})


def main() -> None:
    job = json.load(sys.stdin)
    out = os.dup(1)  # the result pipe; the user's prints go nowhere
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    pid = os.getpid()
    dropped = _drop_privileges()
    _limit(job["limits"], extra_processes=0 if dropped else _tasks_of(os.getuid()))
    network = _isolate_network()
    denied = [os.path.realpath(path) for path in job["deny_paths"]]
    allowed = _readable_roots()
    sys.addaudithook(lambda event, args: _audit(event, args, denied, allowed))
    grade, failure = _load(job["source"])
    for case in job["cases"]:
        _budget(job["limits"]["cpu_s"])
        result = failure or _run(grade, case["sample"], case["item"])
        if os.getpid() != pid:
            os._exit(0)  # a process the grader forked: only the grader itself answers
        os.write(out, (json.dumps(result | {"network": network}) + "\n").encode())
    os._exit(0)


def _limit(limits: dict, *, extra_processes: int) -> None:
    cpu = int(limits["cpu_s"]) * limits["cases"] + 1  # the whole batch's; `_budget` gives each case its share
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL a second later
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"] + extra_processes,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _budget(cpu_s: int) -> None:
    """This case's CPU seconds: RLIMIT_CPU's soft limit moved to what is used so far plus `cpu_s`.
    The grader could raise it again, but only up to the hard limit, the whole batch's allowance."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + int(cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard - 1), hard))


def _isolate_network() -> str:
    """A new network namespace has only a downed loopback: no connection leaves, not even to 127.0.0.1.
    It is made inside a new user namespace, which also leaves the process no capability outside it
    (root's exemption from RLIMIT_NPROC included); where the kernel refuses that, root makes a bare
    network namespace, and where that fails too the audit hook's socket events are what remains."""
    libc = ctypes.CDLL(None, use_errno=True)
    for flags, how in ((CLONE_NEWUSER | CLONE_NEWNET, "user-namespace"), (CLONE_NEWNET, "namespace")):
        if libc.unshare(flags) == 0:
            return how
    return "audit-hook"


def _drop_privileges() -> bool:
    """As root, become `nobody` when that user can still reach the interpreter (under /root it
    cannot): file permissions then apply again, and RLIMIT_NPROC counts only nobody's processes."""
    if os.getuid() != 0 or not all(_reachable(path) for path in (sys.base_prefix, sys.prefix, __file__)):
        return False
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return True


def _reachable(path: str) -> bool:
    """Every directory above `path` can be entered by any user."""
    path = os.path.realpath(path)
    while path != os.sep:
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & 0o001:
            return False
    return True


def _tasks_of(uid: int) -> int:
    """The tasks (processes and threads) `uid` runs now: RLIMIT_NPROC counts them all, so a grader that
    stays this user gets its allowance on top of them."""
    count = 0
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except (OSError, ValueError):
            continue  # not a process, or gone
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def _readable_roots() -> list[str]:
    """Where the grader may open files: the interpreter and its import path, its scratch directory,
    the system's libraries and a few devices. Nothing else (home directories, /etc, other data)."""
    roots = [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path, os.getcwd(), os.path.dirname(__file__)]
    roots += ["/usr", "/lib", "/lib64", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
    return sorted({os.path.realpath(root) for root in roots if root})


def _audit(event: str, args: tuple, denied: list[str], allowed: list[str]) -> None:
    if event in _BLOCKED_EVENTS:
        raise PermissionError(f"the grader sandbox does not allow {event}")
    target = args[0] if event in _PATH_EVENTS and args else None
    if isinstance(target, str | bytes | os.PathLike):
        path = os.path.realpath(os.fsdecode(target))
        if _under(path, denied) or _foreign_proc(path) or not (_under(path, allowed) or _own_proc(path)):
            raise PermissionError(f"the grader sandbox does not allow reading {path}")


def _under(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _own_proc(path: str) -> bool:
    return _under(path, [f"/proc/{os.getpid()}"])


def _foreign_proc(path: str) -> bool:
    """Another process's /proc entry: its environment, memory or open files (the server's, too, since
    the sandbox keeps the server's uid when it cannot become nobody)."""
    parts = path.split(os.sep)
    return len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and parts[2] != str(os.getpid())


def _load(source: str) -> tuple:
    """The user's `grade`, or the failure every case gets when the source does not give one."""
    try:
        scope: dict = {"__name__": "grader"}
        exec(compile(source, "<grader>", "exec"), scope)
    except BaseException:  # SystemExit and MemoryError are the grader's failures too
        return None, {"error": "runtime", "details": traceback.format_exc(limit=-3)[-2000:]}
    if not callable(scope.get("grade")):
        return None, {"error": "runtime", "details": "the source defines no function grade(sample, item)"}
    return scope["grade"], None


def _run(grade, sample: dict, item: dict) -> dict:
    try:
        score = grade(sample, item)
    except BaseException:  # SystemExit and MemoryError are the grader's failures too
        return {"error": "runtime", "details": traceback.format_exc(limit=-3)[-2000:]}
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return {"error": "not_a_number", "details": f"grade() returned {_short(score)}, not a finite number"}
    return {"score": float(score)}


def _short(value: object) -> str:
    try:
        return repr(value)[:200]
    except BaseException:  # a hostile __repr__
        return type(value).__name__


if __name__ == "__main__":
    main()
