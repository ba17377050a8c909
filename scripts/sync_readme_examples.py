"""Copy the tested programs of examples/ into the README, between their markers.

    <!-- example: examples/openai_sdk_example.py -->
    ```python
    ...the file, verbatim...
    ```
    <!-- /example -->

Run `python scripts/sync_readme_examples.py` after changing an example; the tests fail while
the README and examples/ disagree, so the README never shows untested client code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- example: (?P<path>\S+) -->\n)```(?P<lang>\w*)\n.*?```\n(<!-- /example -->)",
                   re.S)


def synced(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        code = (ROOT / match.group("path")).read_text()
        return f"{match.group(1)}```{match.group('lang')}\n{code.rstrip()}\n```\n<!-- /example -->"

    return BLOCK.sub(replace, text)


def main() -> int:
    text = README.read_text()
    new = synced(text)
    if new != text:
        README.write_text(new)
        print("README.md updated from examples/")
    else:
        print("README.md already matches examples/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
