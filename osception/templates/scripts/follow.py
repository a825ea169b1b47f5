"""Print a log file as it grows (like `tail -F`), for a sidecar whose output
`kubectl logs` shows. Waits for the file to appear; follows it when it is
replaced. Standard library only: it runs with the python3 of any Kolla image.

    follow.py FILE
"""

import os
import sys
import time


def follow(path: str) -> None:
    handle, inode = None, None
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_ino != inode:
            if handle:
                handle.close()
            handle, inode = open(path, errors="replace"), st.st_ino
        line = handle.readline() if handle else ""
        if line:
            sys.stdout.write(line)
            sys.stdout.flush()
        else:
            time.sleep(1)


if __name__ == "__main__":
    follow(sys.argv[1])
