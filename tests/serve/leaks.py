"""What no answer may show a client: a traceback, a process id, a host address or a path on the serving machine."""

from __future__ import annotations

import re

_LEAK = re.compile(r'Traceback|File "|\bpid=|\bip=|\.py\b|site-packages|/(?:tmp|home|root|usr|opt|var|proc|work)/')


def leaks(text: str) -> list[str]:
    """Each piece of ``text`` that gives away the server's internals (none in a clean answer).

    Example:
        >>> leaks('ray.exceptions.RayTaskError(ValueError): ... (pid=4242, ip=10.0.0.7) File "/tmp/x.py", line 3')
        ['pid=', 'ip=', 'File "', '/tmp/', '.py']
    """
    return _LEAK.findall(text)
