"""Build corpora other than Shakespeare, reproducibly, from text every Debian/Python machine has.

    python benchmarks/corpora.py --out DIR             # DIR/<name>/input.txt, DIR/corpora.json
    python benchmarks/corpora.py --out DIR --json OUT.json     # the manifest also at OUT.json
    python benchmarks/corpora.py --quick               # every corpus capped at 16 KiB, temp dir

Defaults (priors, the guide's recipe) were chosen on tinyshakespeare; figures measured there
say little about other text. These corpora are other text, built with no network:

- `python_stdlib` (2 MiB): the `.py` files under `sysconfig.get_paths()["stdlib"]`, in sorted
  order of their paths relative to it, leaving out test suites (any folder named `test`,
  `tests` or `idle_test`) and installed packages (`site-packages`, `dist-packages`).
- `licenses` (256 KiB, small: a 2M-token trial sees its training split ~9 times): Python's
  own `LICENSE.txt` (beside the standard library), then `/usr/share/common-licenses/*`, then
  `/usr/share/doc/*/copyright`, each group in sorted order.
- `manpages` (1 MiB): the English manual pages `/usr/share/man/man[1-9]/*.gz`, sorted,
  decompressed with Python's gzip and kept as raw roff source.
- `manpages_ru` (1 MiB cap; ~0.43M characters here): the Russian manual pages
  `/usr/share/man/ru/man[1-9]/*.gz`, the same way, but its letters kept (`unicode`): a
  held-out corpus in another script, with a char vocabulary of ~170, added after every rule
  and default was chosen.

Files are taken whole, in that order, until the next one would pass the cap; symbolic links
and files whose text was already taken are skipped (so one licence is not read three times).
Characters: bytes are decoded as UTF-8 (invalid bytes become U+FFFD); line ends become
"\\n"; tabs are expanded to 8 columns; accented letters lose their accents (NFKD, combining
marks dropped); other control characters are dropped; every character left outside
printable ASCII becomes "?". So a corpus is ASCII with at most 96 distinct characters (95
printable and "\\n"): a char-level vocabulary of the order of Shakespeare's 65, not the
thousands a raw Unicode text can bring. A `unicode` corpus (manpages_ru) keeps every
character but control and format ones, after the same line-end and tab rules; its cap
counts characters. Files are separated by one blank line.

DIR/corpora.json (the manifest) holds per corpus its source rule, the files used (each by
its path below its root's parent: `python3.11/LICENSE.txt`), bytes, characters, distinct
characters and the sha256 of input.txt: rebuild on another machine and compare the sha256
to know it is the same text (it is, given the same Python version and Debian packages).
Running the script twice gives identical files. A corpus whose source has no files here is
left out, said in one line. The corpora are meant to be rebuilt, not committed: commit the
manifest only.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import sysconfig
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import cli  # noqa: E402
from benchmarks.common.output import write_json, write_summary, write_text  # noqa: E402

KiB, MiB = 1024, 1024 * 1024
QUICK_CAP = 16 * KiB
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
MANIFEST = "corpora.json"


@dataclass(frozen=True)
class Corpus:
    name: str
    source: str                                   # the rule, in words (the manifest's)
    cap: int                                      # bytes of input.txt at most
    files: Callable[[], list[tuple[Path, Path]]]  # (root, file) in the order taken
    unicode: bool = False                         # keep letters outside ASCII (clean)


def _stdlib_files() -> list[tuple[Path, Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found = [p for p in root.rglob("*.py")
             if not SKIP_DIRS & set(p.relative_to(root).parts[:-1])]
    return [(root, p) for p in sorted(found, key=lambda p: p.relative_to(root).as_posix())]


def _license_files() -> list[tuple[Path, Path]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = [(stdlib, stdlib / "LICENSE.txt")]
    common = Path("/usr/share/common-licenses")
    out += [(common, p) for p in sorted(common.glob("*"))]
    doc = Path("/usr/share/doc")
    out += [(doc, p) for p in sorted(doc.glob("*/copyright"))]
    return out


def _man_files(lang: str = "") -> list[tuple[Path, Path]]:
    man = Path("/usr/share/man") / lang
    return [(man, p) for p in sorted(man.glob("man[1-9]/*.gz"))]


CORPORA = (
    Corpus("python_stdlib", "the .py files under sysconfig.get_paths()['stdlib'], sorted by "
           "relative path, without folders named test, tests, idle_test, site-packages, "
           "dist-packages", 2 * MiB, _stdlib_files),
    Corpus("licenses", "Python's LICENSE.txt, then /usr/share/common-licenses/*, then "
           "/usr/share/doc/*/copyright, each sorted", 256 * KiB, _license_files),
    Corpus("manpages", "/usr/share/man/man[1-9]/*.gz sorted, gunzipped, raw roff",
           1 * MiB, _man_files),
    Corpus("manpages_ru", "/usr/share/man/ru/man[1-9]/*.gz sorted, gunzipped, raw roff, "
           "letters outside ASCII kept", 1 * MiB, lambda: _man_files("ru"), unicode=True),
)


def clean(raw: bytes, unicode: bool = False) -> str:
    """One file's text as the corpus holds it (the module docstring says what and why)."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.expandtabs(8) for line in text.split("\n"))
    if unicode:  # every character but control and format ones
        text = "".join(c for c in text
                       if c == "\n" or not unicodedata.category(c).startswith("C"))
        return text if text.endswith("\n") else text + "\n"
    out = []
    for c in unicodedata.normalize("NFKD", text):
        if c == "\n" or " " <= c <= "~":
            out.append(c)
        elif unicodedata.combining(c) or unicodedata.category(c).startswith("C"):
            continue               # accents (é -> e) and control/format characters
        else:
            out.append("?")
    text = "".join(out)
    return text if text.endswith("\n") else text + "\n"


def build(corpus: Corpus, cap: int | None = None) -> tuple[str, list[str], list[str]]:
    """(the corpus text, the files used, their roots). A file is named by its path below its
    root's parent (`python3.11/LICENSE.txt`, `doc/adduser/copyright`). Deterministic: the
    same files give the same text."""
    cap = corpus.cap if cap is None else cap
    parts: list[str] = []
    used: list[str] = []
    roots: list[str] = []
    seen: set[str] = set()
    size = 0
    for root, path in corpus.files():
        if path.is_symlink() or not path.is_file():
            continue
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = clean(raw, corpus.unicode)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen or not text.strip():
            continue
        add = len(text) + (1 if parts else 0)       # the blank line between files
        if size + add > cap:
            break
        parts.append(text)
        used.append(path.relative_to(root.parent).as_posix())
        if str(root) not in roots:
            roots.append(str(root))
        seen.add(digest)
        size += add
    return "\n".join(parts), used, roots


def describe(corpus: Corpus, text: str, used: list[str], roots: list[str], cap: int
             ) -> dict[str, Any]:
    """The manifest's entry for one built corpus."""
    data = text.encode()
    return {"name": corpus.name, "path": f"{corpus.name}/input.txt", "source": corpus.source,
            "roots": roots, "cap_bytes": cap, "files": used,
            "file_count": len(used), "bytes": len(data), "characters": len(text),
            "vocab": len(set(text)), "sha256": hashlib.sha256(data).hexdigest()}


def markdown(manifest: dict[str, Any]) -> str:
    lines = ["# Corpora\n",
             f"Built with Python {manifest['python']}; rebuild with `python benchmarks/"
             f"corpora.py --out DIR` and compare the sha256.\n",
             "| corpus | files | bytes | distinct characters | sha256 | source |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['file_count']} | {c['bytes']:,} | {c['vocab']} | "
              f"`{c['sha256'][:16]}…` | {c['source']} |" for c in manifest["corpora"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = cli.benchmark_parser(__doc__, quick=f"every corpus capped at {QUICK_CAP // KiB} KiB",
                             json="write the manifest here too, and its markdown beside it "
                                  "(OUT.md)")
    cli.add_out(p, "corpora", "corpora (<name>/input.txt) and their manifest (corpora.json)")
    args = p.parse_args(argv)
    out = cli.out_folder(args, "corpora")
    if out is None:
        return 2
    built = []
    for corpus in CORPORA:
        cap = QUICK_CAP if args.quick else corpus.cap
        text, used, roots = build(corpus, cap)
        if not used:
            print(f"{corpus.name}: no source files on this machine ({corpus.source}): "
                  f"left out", flush=True)
            continue
        write_text(out / corpus.name / "input.txt", text)
        entry = describe(corpus, text, used, roots, cap)
        built.append(entry)
        print(f"{corpus.name}: {entry['file_count']} files, {entry['bytes']:,} bytes, "
              f"{entry['vocab']} distinct characters, sha256 {entry['sha256'][:16]}…",
              flush=True)
    manifest = {"python": sys.version.split()[0], "corpora": built}
    write_json(out / MANIFEST, manifest, indent=1)
    print(f"written: {out / MANIFEST}")
    if args.json:
        written = write_summary(args.json, manifest, markdown(manifest), indent=1)
        print(f"written: {written[0]}, {written[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
