"""The learner's shelf: GLOSSARY.md, REFERENCES.md with references.bib, LICENSE and CITATION.cff.

* every link of the glossary and the references points to a file that exists;
* every term a lesson sets in **bold** has a row in the glossary, and every `course_lib` name the
  glossary gives is defined somewhere in the package (searched by name: modules may move);
* every author–year citation in a lesson or a solution names exactly one entry of REFERENCES.md,
  so "Ho et al. 2022" fails where 2022a, 2022b and 2022c exist; every entry has its BibTeX key;
* LICENSE is the MIT licence that pyproject.toml declares, and CITATION.cff has CFF 1.2.0's keys.
"""
from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "GLOSSARY.md"
REFERENCES = ROOT / "REFERENCES.md"
BIB = ROOT / "references.bib"

# Bold that a lesson uses as a paragraph or list lead-in, not as a new term. Lead-ins that end in
# ".", ":" or "?" ("**Goals.**", "**Fix:**") or are followed by ":" ("**Memory**:") need no entry.
NOT_TERMS = {
    "the input", "the cost",  # 04: the three things that change from images to video
    "the variance",  # 02: lead-in of the paragraph on σθ²
    "exercises",  # "**Exercises** (`exercises/NN_name.ipynb`): ..." closing every lesson
    "steps", "precision and compile", "data",  # 11 and 12: summary bullets, one per section
    "what this course cannot show",  # 12: lead-in of the limits paragraph
    "cut fixed-length clips",  # 05: a preprocessing step named by its action (the term is "clip")
}


# --- reading the sources -----------------------------------------------------------------------

def lesson_sources() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def solution_sources() -> list[Path]:
    return sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))


def markdown_cells(source: str) -> list[list[str]]:
    """The markdown cells of a jupytext percent file, each as its lines without the leading '# '."""
    cells, current = [], None
    for line in source.splitlines():
        if line.startswith("# %%"):
            current = [] if "[markdown]" in line else None
            if current is not None:
                cells.append(current)
        elif current is not None and line.startswith("#"):
            current.append(re.sub(r"^# ?", "", line))
    return cells


def bold_terms(source: str) -> list[str]:
    """Bold spans that introduce a term: lead-ins ("**Goals.**", "**Memory**:") left out."""
    terms = []
    for cell in markdown_cells(source):
        text = " ".join(line for line in cell if not line.lstrip().startswith("|"))
        for m in re.finditer(r"\*\*([^*]+?)\*\*(:?)", text):
            span = m.group(1).strip()
            if m.group(2) or span[-1] in ".:?" or span.lower() in NOT_TERMS:
                continue
            terms.append(span)
    return terms


def prose(source: str) -> str:
    """A source's text with comment markers removed and lines joined, so citations split over
    two lines ("Nichol &" / "Dhariwal 2021") read as one."""
    lines = (re.sub(r"^\s*#+ ?", "", line) for line in source.splitlines())
    return re.sub(r"\s+", " ", " ".join(lines))


# --- the glossary ------------------------------------------------------------------------------

def normalise(term: str) -> str:
    """Lower case, no markup, hyphens as spaces, no enumeration "(a) " or leading article."""
    term = term.replace("`", "").replace("*", "").strip()
    term = re.sub(r"^\([a-z0-9]\)\s*", "", term)
    term = unicodedata.normalize("NFC", term).lower().replace("-", " ")
    term = re.sub(r"\s+", " ", term).strip()
    return re.sub(r"^(the|a|an) ", "", term)


def number_forms(term: str) -> set[str]:
    """The term and its simple singular / plural."""
    forms = {term, term + "s", term + "es"}
    if term.endswith("es"):
        forms.add(term[:-2])
    if term.endswith("s"):
        forms.add(term[:-1])
    return forms


def table_rows(text: str, header_start: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with ``header_start``."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith(header_start):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            if re.fullmatch(r"\|[-| ]+\|", line):
                continue
            rows.append([cell.strip() for cell in line.strip()[1:-1].split(" | ")])
    return rows


def glossary_rows() -> list[list[str]]:
    return table_rows(GLOSSARY.read_text(encoding="utf-8"), "| English |")


def glossary_names() -> set[str]:
    """Every name a glossary row answers to: the English term, the term without its parenthesis,
    and what the parenthesis holds ("Signal-to-noise ratio (SNR)" answers to all three)."""
    names = set()
    for row in glossary_rows():
        english = row[0]
        names.add(normalise(english))
        names.add(normalise(re.sub(r"\s*\([^)]*\)", "", english)))
        for inside in re.findall(r"\(([^)]*)\)", english):
            names.update(normalise(part) for part in re.split(r"[,;]", inside))
    return names - {""}


def in_glossary(term: str, names: set[str]) -> bool:
    """Equal to a name (up to a simple plural), or the first words of one: a lesson may bold only
    what tells the term apart ("**cosine**" for "Cosine schedule")."""
    forms = number_forms(normalise(term))
    return any(name in forms or any(name.startswith(form + " ") for form in forms) for name in names)


def test_glossary_has_the_columns_and_enough_terms():
    rows = glossary_rows()
    assert len(rows) >= 60, f"{len(rows)} terms"
    assert all(len(row) == 6 for row in rows), [row[0] for row in rows if len(row) != 6]
    english = [normalise(row[0]) for row in rows]
    assert len(set(english)) == len(english), "a term appears twice"
    for row in rows:
        assert row[1] and row[3], f"{row[0]}: 中文 and definition must not be empty"
        lesson = row[4]
        assert re.fullmatch(r"\[\d\d\]\(notebooks/\d\d_\w+\.ipynb\)", lesson) or re.fullmatch(
            r"1[3-6] [\w -]+ \(planned\)", lesson), f"{row[0]}: lesson cell {lesson!r}"


def test_every_link_points_to_a_file():
    for doc in (GLOSSARY, REFERENCES):
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # web addresses and anchors
            assert (ROOT / target.split("#")[0]).is_file(), f"{doc.name}: {target} does not exist"


def test_every_bold_term_of_a_lesson_is_in_the_glossary():
    names = glossary_names()
    missing = [f"{path.name}: {term}" for path in lesson_sources()
               for term in bold_terms(path.read_text(encoding="utf-8")) if not in_glossary(term, names)]
    assert not missing, "bold terms without a glossary row (add the term, or use *italics* for emphasis):\n" + "\n".join(missing)


def test_the_bold_term_reader():
    source = "\n".join([
        "# %% [markdown]",
        "# **Goals.** learn. A **Cosine** schedule and the **image groups**;",
        "# | a | **blind** |",
        "# * **Memory**: weights; **(b) Replacement** (Song et al. 2021b)",
        "# %%",
        "x = a**2 + b**2  # **not markdown**",
    ])
    assert bold_terms(source) == ["Cosine", "image groups", "(b) Replacement"]
    names = {"cosine schedule", "image group", "replacement method"}
    assert all(in_glossary(term, names) for term in bold_terms(source))
    assert not in_glossary("time", {"timestep embedding", "space time attention"})


def defined_names() -> set[str]:
    names = set()
    for path in (ROOT / "course_lib").rglob("*.py"):
        names.update(re.findall(r"^\s*(?:def|class)\s+(\w+)", path.read_text(encoding="utf-8"), flags=re.M))
    return names


def test_every_course_lib_name_in_the_glossary_exists():
    defined = defined_names()
    missing = []
    for row in glossary_rows():
        for code in re.findall(r"`([^`]+)`", row[5]):
            name = re.match(r"\w+", code).group(0)
            if name not in defined:
                missing.append(f"{row[0]}: {code}")
    assert not missing, "glossary names no def/class in course_lib:\n" + "\n".join(missing)


# --- citations ---------------------------------------------------------------------------------

SURNAME = r"[A-Z][\w'’-]*"
CITATION = re.compile(
    rf"(?P<first>{SURNAME})"
    rf"(?:\s+(?P<etal>et\s+al\.)|(?P<others>(?:,\s+{SURNAME})*),?\s+&\s+(?P<last>{SURNAME}))"
    r"\s+\(?(?P<year>(?:19|20)\d\d)(?P<letter>[a-z]?)\b")


def parse_citations(text: str) -> list[tuple[str, str, str, str]]:
    """(first author, "et al." or the second author, year, letter) of each "Author et al. YEAR",
    "Author & Author YEAR" or "A, B & C YEAR" (three or more authors read as "et al.")."""
    found = []
    for m in CITATION.finditer(text):
        if m.group("etal") or m.group("others"):
            rest = "et al."
        else:
            rest = m.group("last")
        found.append((m.group("first"), rest, m.group("year"), m.group("letter")))
    return found


def reference_entries() -> dict[str, str]:
    """label -> bib key, from the "- **Label** `key` — ..." lines of REFERENCES.md."""
    entries = {}
    for m in re.finditer(r"^- \*\*(.+?)\*\* `(\w+)`", REFERENCES.read_text(encoding="utf-8"), flags=re.M):
        assert m.group(1) not in entries, f"REFERENCES.md lists {m.group(1)} twice"
        entries[m.group(1)] = m.group(2)
    return entries


def label_parts(label: str) -> tuple[str, str, str, str]:
    m = re.fullmatch(r"(\S+)(?: (et al\.)| & (\S+))? (\d{4})([a-z]?)", label)
    assert m, f"REFERENCES.md: label {label!r} is not 'Author YEAR', 'Author et al. YEAR' or 'A & B YEAR'"
    first, etal, second, year, letter = m.groups()
    return first, etal or second or "", year, letter


def resolve(citation: tuple[str, str, str, str], labels: list[str]) -> list[str]:
    """The entries a citation can mean: with a letter the one entry with it; without a letter every
    entry of that author–year, lettered or not (two or more: the citation is ambiguous)."""
    first, rest, year, letter = citation
    out = []
    for label in labels:
        l_first, l_rest, l_year, l_letter = label_parts(label)
        if (l_first, l_rest, l_year) == (first, rest, year) and (not letter or letter == l_letter):
            out.append(label)
    return out


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def bib_key(label: str) -> str:
    """ho2022a for "Ho et al. 2022a", ho_salimans2022 for "Ho & Salimans 2022"."""
    first, rest, year, letter = label_parts(label)
    parts = [first] + ([rest] if rest and rest != "et al." else [])
    return "_".join(re.sub(r"[^a-z]", "", ascii_fold(p).lower()) for p in parts) + year + letter


def test_the_resolver_refuses_an_ambiguous_citation():
    labels = ["Ho et al. 2020", "Ho et al. 2022a", "Ho et al. 2022b", "Ho et al. 2022c", "Ho & Salimans 2022"]
    text = ("DDPM (Ho et al. 2020); video (Ho et al. 2022, Eq. 7); Ho et al. (2022b, Imagen Video); "
            "guidance (Ho & Salimans 2022); SSIM (Wang, Bovik, Sheikh & Simoncelli 2004); Nichol &\n Dhariwal 2021")
    cites = parse_citations(prose(text))
    assert cites == [("Ho", "et al.", "2020", ""), ("Ho", "et al.", "2022", ""), ("Ho", "et al.", "2022", "b"),
                     ("Ho", "Salimans", "2022", ""), ("Wang", "et al.", "2004", ""), ("Nichol", "Dhariwal", "2021", "")]
    assert resolve(cites[0], labels) == ["Ho et al. 2020"]
    assert resolve(cites[1], labels) == ["Ho et al. 2022a", "Ho et al. 2022b", "Ho et al. 2022c"]  # ambiguous
    assert resolve(cites[2], labels) == ["Ho et al. 2022b"]
    assert resolve(cites[3], labels) == ["Ho & Salimans 2022"]
    assert resolve(("Ho", "et al.", "2022", "d"), labels) == []


@pytest.mark.parametrize("path", lesson_sources() + solution_sources(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_citation_names_exactly_one_reference(path):
    labels = list(reference_entries())
    problems = []
    for citation in parse_citations(prose(path.read_text(encoding="utf-8"))):
        matches = resolve(citation, labels)
        if len(matches) != 1:
            first, rest, year, letter = citation
            cited = f"{first} {rest} {year}{letter}" if rest == "et al." else f"{first} & {rest} {year}{letter}"
            problems.append(f"{cited}: {matches or 'no entry in REFERENCES.md'}")
    assert not problems, "\n".join(problems)


def test_every_paper_course_lib_cites_is_in_the_references():
    # docstrings may still say "Ho et al. 2022" (several entries): at least one entry must match
    labels = list(reference_entries())
    missing = set()
    for path in (ROOT / "course_lib").rglob("*.py"):
        for first, rest, year, letter in parse_citations(prose(path.read_text(encoding="utf-8"))):
            if not resolve((first, rest, year, letter), labels):
                missing.add(f"{path.relative_to(ROOT)}: {first} {rest} {year}{letter}")
    assert not missing, "\n".join(sorted(missing))


def test_every_reference_has_its_bib_entry():
    entries = reference_entries()
    bib_keys = re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), flags=re.M)
    assert len(bib_keys) == len(set(bib_keys)), "references.bib repeats a key"
    for label, key in entries.items():
        assert key == bib_key(label), f"{label}: key {key}, expected {bib_key(label)}"
    assert set(entries.values()) == set(bib_keys), (
        f"only in REFERENCES.md: {set(entries.values()) - set(bib_keys)}; only in references.bib: {set(bib_keys) - set(entries.values())}")


def test_letters_only_where_an_author_year_is_shared():
    groups: dict[tuple[str, str, str], list[str]] = {}
    for label in reference_entries():
        first, rest, year, letter = label_parts(label)
        groups.setdefault((first, rest, year), []).append(letter)
    for (first, rest, year), letters in groups.items():
        if len(letters) == 1:
            assert letters == [""], f"{first} {rest} {year}: a letter without a second paper"
        else:
            assert sorted(letters) == [chr(ord("a") + i) for i in range(len(letters))], f"{first} {rest} {year}: {letters}"


# --- licence and citation file -----------------------------------------------------------------

def test_license_is_the_mit_license_pyproject_declares():
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]
    declared = declared["text"] if isinstance(declared, dict) else declared
    assert declared == "MIT"
    assert license_text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The video diffusion course authors" in license_text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in license_text


def read_cff(text: str) -> dict:
    try:
        import yaml
    except ImportError:  # the top-level keys, read line by line
        data = {}
        for line in text.splitlines():
            m = re.match(r"^([a-z][\w-]*):\s*(.*)$", line)
            if m:
                data[m.group(1)] = m.group(2).strip().strip('"') or True
        return data
    return yaml.safe_load(text)


def test_citation_cff_has_the_required_keys():
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    cff = read_cff(text)
    for key in ("cff-version", "message", "title", "authors", "license", "version", "type"):
        assert key in cff, f"CITATION.cff: no {key}"
    assert str(cff["cff-version"]) == "1.2.0"
    assert cff["license"] == "MIT"
    assert str(cff["version"]) == tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert cff["type"] == "software"
    if isinstance(cff["authors"], list):
        assert cff["authors"] == [{"name": "The video diffusion course authors"}]
    else:
        assert '- name: "The video diffusion course authors"' in text
