"""Synthetic patients and Summary Care Records for demos and benchmarks (pure, seeded)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from random import Random

import nhs_number

from .outcome import NHS_NUMBER_SYSTEM
from .patient import ODS_SYSTEM
from .scr.builder import build_document

# NHS numbers starting 999 are never issued to real people, so demo data cannot name anyone.
_FIRST_PREFIX = 999_000_000
_PREFIXES = 1_000_000

SURNAMES = (
    # Common UK surnames, with sound-alike and misspelt pairs so fuzzy search has work to do.
    "Smith", "Smyth", "Smythe", "Jones", "Williams", "Brown", "Browne", "Taylor", "Tailor",
    "Davies", "Davis", "Evans", "Wilson", "Willson", "Thomas", "Johnson", "Jonson", "Johnston",
    "Johnstone", "Roberts", "Robinson", "Robertson", "Thompson", "Thomson", "Wright", "Walker",
    "White", "Whyte", "Edwards", "Hughes", "Green", "Greene", "Hall", "Lewis", "Harris",
    "Harries", "Clarke", "Clark", "Patel", "Jackson", "Wood", "Turner", "Martin", "Cooper",
    "Hill", "Ward", "Morris", "Moore", "More", "King", "Watson", "Baker", "Harrison", "Morgan",
    "Young", "Allen", "Allan", "Mitchell", "Anderson", "Andersen", "Lee", "Leigh", "Bell",
    "Parker", "Davidson", "Scott", "Stewart", "Stuart", "Macdonald", "McDonald", "Reid", "Reed",
    "Read", "Murray", "Campbell", "Kelly", "Kelley", "Khan", "Ali", "Ahmed", "Hussain", "Shah",
    "Singh", "Kaur", "Begum", "Rahman", "Price", "Bennett", "Griffiths", "Griffith", "Phillips",
    "Philips", "Carter", "Shaw", "Lloyd", "Cook", "Cooke", "Richardson", "Chapman", "Ellis",
    "Webb", "Rogers", "Rodgers", "Marshall", "Gray", "Grey", "Mason", "Palmer", "Holmes",
    "Mills", "Barnes", "Knight", "Butler", "Russell", "Foster", "Fisher", "Pearson", "Pierson",
    "Owen", "Owens", "Jenkins", "Lawrence", "Laurence", "Dixon", "Hunt", "Hart", "Matthews",
    "Mathews", "Cox", "Fox", "Wells", "Burton", "Burgess", "Hayes", "Hayward", "Nicholson",
    "Nicolson", "Ford", "Payne", "Paine", "Kennedy", "Hamilton", "Graham", "Grahame", "Ross",
    "Byrne", "Burns", "Murphy", "O'Brien", "Nowak", "Chen", "Wong", "Nguyen", "Okafor",
    "Adeyemi", "Mensah", "Fernandes", "Kowalski", "Smith-Jones",
)  # fmt: skip

MALE_NAMES = (
    "Oliver", "George", "Harry", "Jack", "Noah", "Leo", "Arthur", "Muhammad", "Oscar", "Charlie",
    "Jacob", "Thomas", "Henry", "William", "Alfie", "Joshua", "Freddie", "Archie", "Theo",
    "James", "Isaac", "Logan", "Ethan", "Lucas", "Max", "Mason", "Finley", "Samuel", "Daniel",
    "Joseph", "Edward", "Adam", "Benjamin", "Alexander", "Sebastian", "Reuben", "Harrison",
    "Dylan", "Luca", "Elijah", "Toby", "Jude", "Rory", "Louis", "Hugo", "David", "John",
    "Michael", "Paul", "Andrew", "Mark", "Richard", "Stephen", "Peter", "Robert", "Christopher",
    "Matthew", "Anthony", "Kevin", "Gary", "Ian", "Simon", "Neil", "Martin", "Graham", "Colin",
    "Keith", "Brian", "Alan", "Kenneth", "Derek", "Trevor", "Barry", "Roy", "Dennis", "Ronald",
    "Frank", "Albert", "Stanley", "Harold", "Leonard", "Ernest", "Frederick", "Raymond",
    "Gordon", "Philip", "Nigel", "Craig", "Lee", "Wayne", "Darren", "Jason", "Dean", "Ryan",
    "Callum", "Connor", "Liam", "Aaron", "Kieran", "Rhys", "Owen", "Ravi", "Imran", "Tomasz",
)  # fmt: skip

FEMALE_NAMES = (
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Rosie", "Sophia", "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily", "Ella",
    "Evelyn", "Phoebe", "Sofia", "Evie", "Charlotte", "Harper", "Millie", "Matilda", "Maya",
    "Sophie", "Alice", "Emilia", "Isabelle", "Ruby", "Jessica", "Chloe", "Hannah", "Lucy",
    "Holly", "Megan", "Bethany", "Lauren", "Rebecca", "Laura", "Amy", "Sarah", "Emma",
    "Rachel", "Claire", "Nicola", "Joanne", "Lisa", "Michelle", "Helen", "Karen", "Julie",
    "Tracey", "Amanda", "Louise", "Kelly", "Donna", "Dawn", "Angela", "Susan", "Linda",
    "Deborah", "Jacqueline", "Elizabeth", "Margaret", "Patricia", "Christine", "Janet",
    "Carol", "Barbara", "Pauline", "Jean", "Brenda", "Maureen", "Sandra", "Valerie", "Joan",
    "Doris", "Dorothy", "Irene", "Edna", "Gladys", "Hilda", "Vera", "Violet", "Winifred",
    "Mary", "Anne", "Catherine", "Katherine", "Kathryn", "Jane", "Priya", "Aisha", "Fatima",
    "Zainab", "Agnieszka", "Siobhan",
)  # fmt: skip

# Real outward codes with their post towns; each GP practice sits in one of these areas.
AREAS = (
    ("LS1", "Leeds"), ("LS6", "Leeds"), ("LS14", "Leeds"), ("BD1", "Bradford"),
    ("HX1", "Halifax"), ("HD1", "Huddersfield"), ("WF1", "Wakefield"), ("YO1", "York"),
    ("YO10", "York"), ("HU9", "Hull"), ("DN1", "Doncaster"), ("S1", "Sheffield"),
    ("S10", "Sheffield"), ("M1", "Manchester"), ("M14", "Manchester"), ("M20", "Manchester"),
    ("SK1", "Stockport"), ("OL1", "Oldham"), ("BL1", "Bolton"), ("WA1", "Warrington"),
    ("L1", "Liverpool"), ("L15", "Liverpool"), ("CH1", "Chester"), ("PR1", "Preston"),
    ("BB1", "Blackburn"), ("LA1", "Lancaster"), ("CA1", "Carlisle"),
    ("NE1", "Newcastle upon Tyne"), ("NE6", "Newcastle upon Tyne"), ("SR1", "Sunderland"),
    ("DH1", "Durham"), ("TS1", "Middlesbrough"), ("DL1", "Darlington"),
    ("NG1", "Nottingham"), ("NG7", "Nottingham"), ("DE1", "Derby"), ("LE1", "Leicester"),
    ("CV1", "Coventry"), ("B1", "Birmingham"), ("B15", "Birmingham"), ("B29", "Birmingham"),
    ("WV1", "Wolverhampton"), ("WS1", "Walsall"), ("DY1", "Dudley"), ("ST1", "Stoke-on-Trent"),
    ("WR1", "Worcester"), ("HR1", "Hereford"), ("SY1", "Shrewsbury"), ("PE1", "Peterborough"),
    ("NR1", "Norwich"), ("IP1", "Ipswich"), ("CB1", "Cambridge"), ("CB2", "Cambridge"),
    ("CO1", "Colchester"), ("CM1", "Chelmsford"), ("SS1", "Southend-on-Sea"),
    ("OX1", "Oxford"), ("OX4", "Oxford"), ("MK9", "Milton Keynes"), ("LU1", "Luton"),
    ("AL1", "St Albans"), ("RG1", "Reading"), ("SL1", "Slough"), ("GU1", "Guildford"),
    ("CT1", "Canterbury"), ("ME1", "Rochester"), ("TN1", "Tunbridge Wells"),
    ("BN1", "Brighton"), ("PO1", "Portsmouth"), ("SO14", "Southampton"),
    ("BH1", "Bournemouth"), ("BA1", "Bath"), ("BS1", "Bristol"), ("BS8", "Bristol"),
    ("GL1", "Gloucester"), ("EX1", "Exeter"), ("PL1", "Plymouth"), ("TR1", "Truro"),
    ("SW1A", "London"), ("SE1", "London"), ("E1", "London"), ("N1", "London"),
    ("NW3", "London"), ("W2", "London"), ("EC1A", "London"), ("WC1E", "London"),
    ("CF10", "Cardiff"), ("CF24", "Cardiff"), ("NP20", "Newport"), ("SA1", "Swansea"),
    ("LL57", "Bangor"), ("EH1", "Edinburgh"), ("EH3", "Edinburgh"), ("G1", "Glasgow"),
    ("G12", "Glasgow"), ("AB10", "Aberdeen"), ("DD1", "Dundee"), ("IV1", "Inverness"),
    ("BT1", "Belfast"),
)  # fmt: skip

STREETS = (
    "High Street", "Station Road", "Church Lane", "Victoria Road", "Park Road", "Mill Lane",
    "Green Lane", "Manor Road", "Church Street", "Queens Road", "New Road", "Kings Road",
    "Alexandra Road", "Grange Road", "North Street", "London Road", "Albert Road", "York Road",
    "Springfield Road", "The Avenue", "Main Street", "Windsor Road", "Highfield Road",
    "Chapel Street", "Market Place", "Orchard Close", "Beech Grove", "Elm Drive",
    "Meadow View", "Acacia Avenue",
)  # fmt: skip

# The letters a postcode's inward code may end with (no C, I, K, M, O or V).
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
# Letters GP practice ODS codes start with (English regions, plus W for Wales).
ODS_LETTERS = "ABCDEFGHJKLMNPWY"

# SNOMED CT findings for the allergies and adverse reactions section.
ALLERGIES = (
    ("91936005", "Allergy to penicillin"),
    ("300916003", "Latex allergy"),
    ("91935009", "Allergy to peanut"),
    ("293586001", "Allergy to aspirin"),
    ("91930004", "Allergy to eggs"),
    ("300913006", "Shellfish allergy"),
    ("418689008", "Allergy to grass pollen"),
    ("232350006", "House dust mite allergy"),
)
# dm+d virtual medicinal products (SNOMED CT codes) for the medications section.
MEDICATIONS = (
    ("322236009", "Paracetamol 500mg tablets"),
    ("329652003", "Ibuprofen 200mg tablets"),
    ("320000009", "Simvastatin 40mg tablets"),
    ("320029006", "Atorvastatin 10mg tablets"),
    ("319283006", "Amlodipine 5mg tablets"),
    ("374296008", "Levothyroxine sodium 100microgram tablets"),
    ("323509004", "Amoxicillin 250mg capsules"),
    ("39113611000001102", "Salbutamol 100micrograms/dose inhaler CFC free"),
    ("408063002", "Beclometasone 100micrograms/dose inhaler CFC free"),
    ("321196004", "Diazepam 2mg tablets"),
)

GP_PRACTICES = 200  # practices per run: many patients share one, as in life


# ------------------------------------------------------------------ NHS numbers


def nhs_numbers(rng: Random) -> Iterator[str]:
    """Distinct valid NHS numbers from the 999 range, in an order fixed by `rng`.

    Ends when the range is used up (about 909,000 numbers: a nine-digit prefix whose check digit
    would be 10 has no number).
    """
    seen: set[int] = set()
    while len(seen) < _PREFIXES:
        offset = rng.randrange(_PREFIXES)
        if offset in seen:
            continue
        seen.add(offset)
        nine = str(_FIRST_PREFIX + offset)
        check = nhs_number.calculate_checksum(nine)
        if check != 10:
            yield f"{nine}{check}"


# ------------------------------------------------------------------ places and practices


@dataclass(frozen=True)
class Practice:
    """A GP practice: its ODS code, the postcode area its patients live in, and its GP (who
    writes its patients' Summary Care Records)."""

    code: str
    outward: str
    town: str
    gp: str


def practices(rng: Random, count: int = GP_PRACTICES) -> list[Practice]:
    """`count` GP practices with distinct ODS codes (letter + five digits), spread over AREAS."""
    codes: set[str] = set()
    out: list[Practice] = []
    while len(out) < count:
        code = f"{rng.choice(ODS_LETTERS)}{rng.randrange(100_000):05d}"
        if code in codes:
            continue
        codes.add(code)
        outward, town = rng.choice(AREAS)
        gp = f"Dr {rng.choice(MALE_NAMES + FEMALE_NAMES)[0]} {rng.choice(SURNAMES)}"
        out.append(Practice(code, outward, town, gp))
    return out


def postcode(rng: Random, outward: str) -> str:
    """A postcode in the `outward` area: "LS1" -> e.g. "LS1 4HR"."""
    return f"{outward} {rng.randrange(10)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"


def phone(rng: Random) -> str:
    # Ofcom keeps these ranges for drama: they ring nobody.
    if rng.random() < 0.6:
        return f"07700 900{rng.randrange(1000):03d}"
    return f"01632 960{rng.randrange(1000):03d}"


# ------------------------------------------------------------------ people


def _age_weight(age: int) -> float:
    # Roughly the UK's age pyramid: flat to 60, thinning after 70, few past 90.
    if age < 60:
        return 1.2
    if age < 70:
        return 1.1
    if age < 80:
        return 0.85
    if age < 90:
        return 0.4
    return 0.08


_AGES = tuple(range(101))
_AGE_CUM_WEIGHTS = tuple(itertools.accumulate(_age_weight(a) for a in _AGES))


def birth_date(rng: Random, today: dt.date) -> dt.date:
    """A birth date 0-100 years before `today`, weighted like the UK's ages.

    Never `today` itself: the server's today may be a day behind the caller's (time zones).
    """
    age = rng.choices(_AGES, cum_weights=_AGE_CUM_WEIGHTS)[0]
    return today - dt.timedelta(days=int(age * 365.25) + rng.randrange(1, 366))


def gender(rng: Random) -> str:
    roll = rng.random()
    if roll < 0.495:
        return "male"
    if roll < 0.99:
        return "female"
    return "other" if roll < 0.995 else "unknown"


def given_names(rng: Random, sex: str) -> list[str]:
    """One given name, sometimes two, from the names of `sex` (either list for other/unknown)."""
    by_sex = {"male": MALE_NAMES, "female": FEMALE_NAMES}
    pool = by_sex.get(sex) or rng.choice((MALE_NAMES, FEMALE_NAMES))
    first = rng.choice(pool)
    if rng.random() < 0.3:
        middle = rng.choice(pool)
        if middle != first:
            return [first, middle]
    return [first]


def patient(rng: Random, nhs: str | None, today: dt.date, pool: Sequence[Practice]) -> dict:
    """A FHIR Patient registered at one of the `pool` practices, as POST /Patient takes it.

    `nhs` None leaves the number to the server.
    """
    practice = rng.choice(pool)
    sex = gender(rng)
    resource: dict = {"resourceType": "Patient"}
    if nhs is not None:
        resource["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": nhs}]
    resource |= {
        "name": [{"use": "usual", "family": rng.choice(SURNAMES), "given": given_names(rng, sex)}],
        "gender": sex,
        "birthDate": birth_date(rng, today).isoformat(),
        "address": [
            {
                "line": [f"{rng.randrange(1, 250)} {rng.choice(STREETS)}", practice.town],
                "postalCode": postcode(rng, practice.outward),
            }
        ],
        "telecom": [{"system": "phone", "value": phone(rng)}],
        "generalPractitioner": [
            {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": practice.code}}
        ],
    }
    return resource


# ------------------------------------------------------------------ Summary Care Records


def uuid_from(rng: Random) -> str:
    """A version 4 UUID drawn from `rng` (so the same seed gives the same ids)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def scr_content(rng: Random) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """0-3 allergies and 0-3 medications, as SNOMED (code, display) pairs."""
    return (
        rng.sample(ALLERGIES, rng.choice((0, 0, 1, 1, 2, 3))),
        rng.sample(MEDICATIONS, rng.choice((0, 1, 1, 2, 2, 3))),
    )


def scr(rng: Random, nhs: str, today: dt.date, author: str) -> dict:
    """An SCR upload Bundle for patient `nhs`, written by `author` in the year before `today`."""
    allergies, medications = scr_content(rng)
    day = today - dt.timedelta(days=rng.randrange(1, 366))  # before today: never in the future
    when = dt.datetime.combine(day, dt.time(rng.randrange(8, 18), rng.randrange(60)), dt.UTC)
    return build_document(
        nhs,
        uuid_from(rng),
        allergies=allergies,
        medications=medications,
        author=author,
        when=when.isoformat(timespec="seconds"),
    )


# ------------------------------------------------------------------ a run's population


@dataclass(frozen=True)
class Person:
    """One synthetic person: the Patient to create, and the SCR to upload after it (or None)."""

    patient: dict
    scr: dict | None

    @property
    def nhs(self) -> str:
        return self.patient["identifier"][0]["value"]


def population(seed: int, today: dt.date, scr_share: float = 0.6) -> Iterator[Person]:
    """The people of one run, endless until the 999 range runs out; same seed, same people.

    `scr_share` is the fraction of people who also get a Summary Care Record.
    """
    if not 0.0 <= scr_share <= 1.0:
        raise ValueError(f"scr_share {scr_share}: must be between 0 and 1")
    rng = Random(seed)
    gps = {p.code: p for p in practices(rng)}
    pool = list(gps.values())
    for nhs in nhs_numbers(rng):
        resource = patient(rng, nhs, today, pool)
        gp = gps[resource["generalPractitioner"][0]["identifier"]["value"]].gp
        record = scr(rng, nhs, today, gp) if rng.random() < scr_share else None
        yield Person(resource, record)
