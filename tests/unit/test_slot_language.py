"""What recruiters type, part two: misspelt cities, countries, remote work, lists of skills joined
by "or"/"und"/"o", skills ruled out ("not Java", "ohne PHP", "sin Java") and job titles the
vocabulary does not know. Messages written for these tests, not taken from the evaluation sets."""

from __future__ import annotations

import pydantic
import pytest

from services.intent.domain.slots import CAMPAIGN_MARKERS, SlotExtractor
from services.intent.domain.vocabulary import load_vocabulary
from services.intent.evaluate import SLOTS, slot_items
from shared.contracts.intent import INTENTS, Slots


@pytest.fixture(scope="module")
def extractor() -> SlotExtractor:
    return SlotExtractor(load_vocabulary())


# -- misspelt cities ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "city"),
    [
        ("kotlin devs in Barcelna", "barcelona"),
        ("anyone in berln who knows rust", "berlin"),
        ("scala Entwickler in Munchen", "munchen"),  # an alias of Munich: kept as written
        ("go Entwickler in Munchn", "munich"),  # a typo: the canonical name
        ("ruby people in amsterdm", "amsterdam"),
        ("busca devs de php en sevlla", "seville"),
        ("Berln python devs", "berlin"),  # capitalised: a city even without "in"
        ("java devs Barcelna", "barcelona"),
    ],
)
def test_misspelt_cities_are_read_as_the_city(
    extractor: SlotExtractor, message: str, city: str
) -> None:
    assert extractor.extract(message).location == city


@pytest.mark.parametrize(
    "message",
    [
        "meet python devs in person",
        "java devs in total",
        "any go devs starting in march",
        "python devs in general",
        "rust people in there",
    ],
)
def test_ordinary_words_after_in_are_no_city(extractor: SlotExtractor, message: str) -> None:
    slots = extractor.extract(message)
    assert slots.location is None
    assert slots.country is None


# -- countries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "country"),
    [
        ("java devs in Spain", "ES"),
        ("python engineers anywhere in Germany", "DE"),
        ("desarrolladores react en España", "ES"),
        ("Go-Entwickler in Deutschland", "DE"),
        ("kotlin leute deutschlandweit", "DE"),
        ("php devs in the netherlands", "NL"),
        ("rust devs in the UK", "GB"),
        ("scala Entwickler in der Schweiz", "CH"),
        ("ingenieros de datos en países bajos", "NL"),
        ("swift devs in germnay", "DE"),  # misspelt, right after "in"
    ],
)
def test_a_country_is_its_iso_code(extractor: SlotExtractor, message: str, country: str) -> None:
    slots = extractor.extract(message)
    assert slots.country == country
    assert slots.location is None


def test_a_city_wins_over_its_country(extractor: SlotExtractor) -> None:
    slots = extractor.extract("python devs in Madrid, Spain")
    assert (slots.location, slots.country) == ("madrid", None)


def test_every_city_country_has_a_name(extractor: SlotExtractor) -> None:
    import json

    from services.intent.domain.vocabulary import BUILTIN_DIR

    cities = json.loads((BUILTIN_DIR / "cities.json").read_text(encoding="utf-8"))
    countries = json.loads((BUILTIN_DIR / "countries.json").read_text(encoding="utf-8"))
    assert {info["country"] for info in cities.values()} <= set(countries)
    assert all(code == code.upper() and len(code) == 2 for code in countries)
    # No country name is a city's name too ("Luxembourg", "Singapore" are read as the city).
    assert not set(extractor.vocabulary.countries) & set(extractor.vocabulary.cities)


# -- remote -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "remote"),
    [
        ("remote python devs", True),
        ("java people, fully remote", True),
        ("devs de go en remoto", True),
        ("busca gente remota de kotlin", True),
        ("Entwickler im Home-Office mit Rust", True),
        ("100% remote react folks", True),
        ("onsite java devs in dublin", False),
        ("C#-Leute vor Ort in Stuttgart", False),
        ("devs presenciales en valencia", False),
        ("no remote, java devs in madrid", False),
        ("python devs in berlin", None),
        ("remote or onsite, php people", None),  # both: no preference
    ],
)
def test_remote(extractor: SlotExtractor, message: str, remote: bool | None) -> None:
    assert extractor.extract(message).remote is remote


# -- several skills ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "skills"),
    [
        ("python or go", ["python", "go"]),
        ("find python or go", ["python", "go"]),
        ("java und kotlin", ["java", "kotlin"]),
        ("react o vue", ["react", "vue"]),
        ("busca gente de react o vue", ["react", "vue"]),
        ("rust, go", ["rust", "go"]),
        ("typescript/node", ["typescript", "node.js"]),
    ],
)
def test_skills_joined_by_and_or(extractor: SlotExtractor, message: str, skills: list[str]) -> None:
    assert extractor.extract(message).skills == skills


def test_an_ordinary_word_next_to_a_skill_is_still_a_word(extractor: SlotExtractor) -> None:
    assert extractor.extract("python devs, let's go").skills == ["python"]


# -- skills ruled out -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "skills", "excluded"),
    [
        ("backend devs, not Java", [], ["java"]),
        ("python people, no PHP", ["python"], ["php"]),
        ("Go-Entwickler ohne Java", ["go"], ["java"]),
        ("Python-Leute, kein PHP", ["python"], ["php"]),
        ("devs de kotlin sin Java", ["kotlin"], ["java"]),
        ("anyone with spark except java", ["spark"], ["java"]),
        ("sin java ni php, solo python", ["python"], ["java", "php"]),
        ("react devs but no angular or vue", ["react"], ["angular", "vue"]),
        ("python devs without django experience", ["python"], ["django"]),
        ("Scala-Entwickler aber nicht Spark", ["scala"], ["spark"]),
        ("devs node salvo los que saben php", ["node.js"], ["php"]),
        ("cloud people except those with azure", [], ["azure"]),
        ("java folks, no jvaa", ["java"], []),  # a typo of a skill they also want: left alone
    ],
)
def test_skills_ruled_out(
    extractor: SlotExtractor, message: str, skills: list[str], excluded: list[str]
) -> None:
    slots = extractor.extract(message)
    assert slots.skills == skills
    assert slots.exclude_skills == excluded
    assert not set(slots.skills) & set(slots.exclude_skills)


@pytest.mark.parametrize(
    "message",
    [
        "python devs in berlin, no more than 5 years",
        "not sure: java or kotlin devs",
        "no tenemos devs de java en madrid?",
        "java devs, nicht nur in berlin",
        "al menos 3 años de python",
    ],
)
def test_a_negation_of_something_else_rules_out_no_skill(
    extractor: SlotExtractor, message: str
) -> None:
    assert extractor.extract(message).exclude_skills == []


# -- job titles the vocabulary does not know --------------------------------------------------


@pytest.mark.parametrize(
    ("message", "title", "markers"),
    [
        ("email react devs about the growth hacker role", "growth hacker", frozenset()),
        ("ping sales folks re our customer success position", "customer success", frozenset()),
        ("escribe a devs sobre el puesto de growth hacker", "growth hacker", frozenset()),
        ("schreib ihnen wegen der Stelle als Growth Hacker", "growth hacker", frozenset()),
        ("how is the growth hacker campaign doing", "growth hacker", CAMPAIGN_MARKERS),
        ("how is the campaign for the data platform lead", "data platform lead", CAMPAIGN_MARKERS),
    ],
)  # fmt: skip
def test_free_job_titles(
    extractor: SlotExtractor, message: str, title: str, markers: frozenset[str]
) -> None:
    assert extractor.read(message, markers).slots.job_title == title


@pytest.mark.parametrize(
    ("message", "markers"),
    [
        ("how is my last react campaign", CAMPAIGN_MARKERS),
        ("how is the berlin python campaign", CAMPAIGN_MARKERS),
        ("Hau die Kampagne jetzt raus", CAMPAIGN_MARKERS),
        ("search for python developers in berlin", frozenset()),
        ("email python devs about the remote backend role", frozenset()),
        ("email the python devs about the role", frozenset()),
    ],
)
def test_no_free_title_where_there_is_none(
    extractor: SlotExtractor, message: str, markers: frozenset[str]
) -> None:
    assert extractor.read(message, markers).slots.job_title is None


# -- the contract and the evaluation ----------------------------------------------------------


def test_the_new_slots_come_last_and_default_to_nothing() -> None:
    assert list(Slots.model_fields)[-4:] == [
        "country",
        "remote",
        "exclude_skills",
        "follow_up_days",
    ]
    assert Slots() == Slots(country=None, remote=None, exclude_skills=[], follow_up_days=[])
    with pytest.raises(pydantic.ValidationError):
        Slots(country="spain")
    with pytest.raises(pydantic.ValidationError):
        Slots(country="es")


def test_a_search_carries_the_new_slots_and_a_status_question_does_not() -> None:
    slots = Slots(skills=["java"], country="ES", remote=True, exclude_skills=["php"])
    assert INTENTS["candidate_search"].keep(slots) == slots
    assert INTENTS["email_campaign"].keep(slots) == slots
    assert INTENTS["campaign_status"].keep(slots) == Slots(skills=["java"])


def test_the_evaluation_scores_the_new_slots() -> None:
    assert {"country", "remote", "exclude_skills"} <= set(SLOTS)
    items = slot_items({"country": "ES", "remote": False, "exclude_skills": ["php"]})
    assert items == {("country", "es"), ("remote", "false"), ("exclude_skills", "php")}


# -- part three: titles of mails, titles without "role", skills that are words ---------------


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("did anyone answer the staff data engineer emails", "staff data engineer"),
        ("how many opened the sre mails", "sre"),
        ("replies to my head of design messages?", "head of design"),
        ("wie viele Antworten auf meine Backend Entwickler Nachrichten", "backend entwickler"),
        ("hat jemand auf die Mails für den QA Engineer geantwortet", "qa engineer"),
        ("wie viele Mails für den Cloud Engineer kamen zurück", "cloud engineer"),
        ("respuestas a los correos de data analyst", "data analyst"),
        ("alguien abrió los mensajes del sre", "sre"),
    ],
)
def test_the_mails_of_a_status_question_name_its_job(
    extractor: SlotExtractor, message: str, title: str
) -> None:
    assert extractor.read(message, CAMPAIGN_MARKERS).slots.job_title == title


@pytest.mark.parametrize(
    "message",
    [
        "any replies to the kotlin emails",
        "has anyone opened the Lisbon mails",
        "how many opened my mails",
        "respuestas a los correos de ayer",
    ],
)
def test_mails_named_by_a_skill_or_city_name_no_job(extractor: SlotExtractor, message: str) -> None:
    assert extractor.read(message, CAMPAIGN_MARKERS).slots.job_title is None


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("email python devs about the sre position", "sre"),
        ("schreib go leuten für die sre stelle", "sre"),
        ("contacta a devs para el puesto de sre", "sre"),
        ("escribe a devs de java por lo del growth engineer", "growth engineer"),
        ("schreib java leuten thema infrastructure engineer job", "infrastructure engineer"),
        ("kontaktiere python leute in bonn, 2-4 jahre, data engineer stelle", "data engineer"),
        ("email rust devs in berlin growth engineer role", "growth engineer"),
        ("reach out to go devs in paris, 3+ years, platform engineer role", "platform engineer"),
    ],
)
def test_a_title_takes_no_city_years_or_lead_word(
    extractor: SlotExtractor, message: str, title: str
) -> None:
    assert extractor.extract(message).job_title == title


def test_a_title_keeps_the_city_and_years_out_of_it(extractor: SlotExtractor) -> None:
    slots = extractor.extract("kontaktiere python leute in bonn, 2-4 jahre, data engineer stelle")
    assert (slots.location, slots.min_years_experience) == ("bonn", 2)


@pytest.mark.parametrize(
    ("message", "skill"),
    [
        ("any react ppl in lisbon?", "react"),
        ("swift peeps in london", "swift"),
        ("hay gente de node en sevilla?", "node.js"),
        ("alguien de rust en madrid?", "rust"),
        ("kandidaten in belgien die go können", "go"),
    ],
)
def test_a_skill_that_is_a_word_is_the_skill_next_to_people(
    extractor: SlotExtractor, message: str, skill: str
) -> None:
    assert extractor.extract(message).skills == [skill]


@pytest.mark.parametrize(
    "message",
    [
        "did anyone react to my emails",
        "let's go through the shortlist",
        "alguien swift",
        "we need to go with the plan",
    ],
)
def test_a_skill_that_is_a_word_is_a_word_elsewhere(extractor: SlotExtractor, message: str) -> None:
    assert extractor.extract(message).skills == []


@pytest.mark.parametrize(
    ("message", "skills", "excluded"),
    [
        ("who knows kafka but not rabbitmq", ["kafka"], ["rabbitmq"]),
        ("wer kann php aber kein laravel", ["php"], ["laravel"]),
        ("quién conoce react pero no vue", ["react"], ["vue"]),
    ],
)
def test_a_negation_after_a_skill_rules_out_the_next(
    extractor: SlotExtractor, message: str, skills: list[str], excluded: list[str]
) -> None:
    slots = extractor.extract(message)
    assert (slots.skills, slots.exclude_skills) == (skills, excluded)


# -- job titles after a colon, "is", "(m/w/d)", "re:", a campaign, a bare marker --------------


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("mail go people in bonn, role: site reliability engineer", "site reliability engineer"),
        ("write to scala devs, the title is data architect", "data architect"),
        ("java Leute in Ulm anschreiben, Stelle: Backend Engineer", "backend engineer"),
        ("die stelle ist cloud architect, bitte kotlin leute anschreiben", "cloud architect"),
        ("escribe a gente php en vigo, puesto: web developer", "web developer"),
        ("el puesto es qa engineer, busca gente de cypress", "qa engineer"),
        ("schreib rust Entwicklern wegen Embedded Engineer (m/w/d)", "embedded engineer"),
        ("Mobile Developer (w/m/d): flutter Leute in Kiel anschreiben", "mobile developer"),
        ("email kafka folks in leeds re: streaming engineer", "streaming engineer"),
        ("kick off a campaign for data engineer, spark people in york", "data engineer"),
        ("escribe a devs c# en cádiz por la vacante backend engineer", "backend engineer"),
        ("contacta gente angular para el puesto frontend lead", "frontend lead"),
        ("Schreib Go Leuten in Graz, Stelle Platform Engineer", "platform engineer"),
        ("mail elixir devs in vigo, vacancy backend developer", "backend developer"),
    ],
)
def test_a_title_after_a_colon_is_or_a_gender_tag(
    extractor: SlotExtractor, message: str, title: str
) -> None:
    assert extractor.extract(message).job_title == title


@pytest.mark.parametrize(
    "message",
    [
        "start a campaign for senior Rust developers in Oslo",
        "Kampagne für erfahrene Python Entwickler in Bonn",
        "Berlin, suche Java Entwickler mit Spring",
    ],
)
def test_people_after_a_campaign_or_search_word_are_no_title(
    extractor: SlotExtractor, message: str
) -> None:
    slots = extractor.extract(message)
    assert slots.job_title is None
    assert slots.skills


def test_a_title_before_a_colon_wins_over_what_follows(extractor: SlotExtractor) -> None:
    slots = extractor.extract("Outreach for the Data Analyst job: dbt people in Leeds")
    assert slots.job_title == "data analyst"
    assert slots.skills == ["dbt"]


def test_a_title_ends_at_a_colon(extractor: SlotExtractor) -> None:
    slots = extractor.extract("campaña para data engineer: gente de spark en vigo")
    assert slots.job_title == "data engineer"
    assert slots.skills == ["spark"]


# -- people ruled out by who they are -----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "wanted", "ruled_out"),
    [
        ("mail kotlin devs, nobody with scala", ["kotlin"], ["scala"]),
        ("email vue devs, no one who knows jquery", ["vue"], ["jquery"]),
        ("go Entwickler anschreiben, aber niemanden mit C++", ["go"], ["c++"]),
        ("kontaktiere swift leute, niemand mit objective-c", ["swift"], ["objective-c"]),
        ("escribe a devs ruby, a nadie con perl", ["ruby"], ["perl"]),
        ("busca gente de node, no queremos gente de php", ["node.js"], ["php"]),
        ("find laravel people, we don't want wordpress folks", ["laravel"], ["wordpress"]),
    ],
)
def test_people_ruled_out_by_a_skill(
    extractor: SlotExtractor, message: str, wanted: list[str], ruled_out: list[str]
) -> None:
    slots = extractor.extract(message)
    assert slots.skills == wanted
    assert slots.exclude_skills == ruled_out


# -- smaller shapes: "w/ swift", a skill alone in a list, "mind.", "Kölner", "Junioren" ----------


@pytest.mark.parametrize(
    ("message", "skills"),
    [
        ("mail devs w/ flutter in oslo", ["flutter"]),
        ("mobile people in york, swift, 3+ years", ["swift"]),
        ("Leute in Kiel; go; remote", ["go"]),
    ],
)
def test_a_word_skill_after_w_or_alone_in_a_list(
    extractor: SlotExtractor, message: str, skills: list[str]
) -> None:
    assert extractor.extract(message).skills == skills


@pytest.mark.parametrize(
    ("message", "years"),
    [
        ("zeig rust leute mit mind. 4 jahren", 4),
        ("go Entwickler ab 6 Jahren Erfahrung", 6),
        ("devs de scala con mín. 2 años", 2),
    ],
)
def test_short_forms_of_at_least_years(extractor: SlotExtractor, message: str, years: int) -> None:
    assert extractor.extract(message).min_years_experience == years


@pytest.mark.parametrize(
    ("message", "city"),
    [
        ("wie läuft die Münchner Kotlin Kampagne", "münchen"),
        ("die Hamburger java leute anschreiben", "hamburg"),
        ("zeig Dresdner python entwickler", "dresden"),
    ],
)
def test_a_german_city_adjective_names_the_city(
    extractor: SlotExtractor, message: str, city: str
) -> None:
    assert extractor.extract(message).location == city


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("wie viele Junioren mit Kotlin gibt es", "junior"),
        ("cuántos lead con rust tenemos", "lead"),
        ("how many lead with scala do we have", "lead"),
    ],
)
def test_levels_counted_without_a_person_noun(
    extractor: SlotExtractor, message: str, level: str
) -> None:
    assert extractor.extract(message).seniority == level


# -- recruiters' chat shorthand in German and Spanish, part three --------------------------


@pytest.mark.parametrize(
    ("message", "title", "skills"),
    [
        ("schick den php leuten in bonn eine mail wegen web developer", "web developer", ["php"]),
        ("escribe a la gente de vue en cadiz por frontend engineer", "frontend engineer", ["vue"]),
        ("kontaktiere rust leute für backend engineer", "backend engineer", ["rust"]),
        # a skill in the title is the job's, not the audience's
        ("schreib den kotlin leuten wegen android developer", "android developer", ["kotlin"]),
        ("contacta devs swift para ios engineer, sin flutter", "ios engineer", ["swift"]),
    ],
)
def test_a_title_after_a_bare_preposition_is_the_job(
    extractor: SlotExtractor, message: str, title: str, skills: list[str]
) -> None:
    slots = extractor.extract(message)
    assert slots.job_title == title
    assert slots.skills == skills


@pytest.mark.parametrize(
    "message",
    [
        "kampagne für senior python entwickler",  # people, not a job
        "escribe a devs react por data engineers en madrid",  # plural: people
        "por favor escribe a devs go",
        "schreib den go leuten für 3 wochen",
    ],
)
def test_a_bare_preposition_before_people_names_no_job(
    extractor: SlotExtractor, message: str
) -> None:
    assert extractor.extract(message).job_title is None


def test_a_role_word_after_del_names_the_campaigns_job(extractor: SlotExtractor) -> None:
    reading = extractor.read("quien abrio los correos del puesto data analyst", CAMPAIGN_MARKERS)
    assert reading.slots.job_title == "data analyst"


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        ("dame devs go en bilbao, máximo 8", 8),
        ("dame devs go en bilbao, maximo 8", 8),
        ("zeig java leute in bonn, max. 12", 12),
        ("lista 7 desarolladores php", 7),  # a misspelt person noun still counts people
    ],
)
def test_a_maximum_and_a_misspelt_person_noun_give_the_limit(
    extractor: SlotExtractor, message: str, limit: int
) -> None:
    assert extractor.extract(message).limit == limit


@pytest.mark.parametrize(
    ("message", "remote"),
    [
        ("zeig vor-ort leute in bonn", False),
        ("devs react que no quieren trabajar en remoto", False),
        ("gente php que no busca remoto", False),
        ("people who don't want remote work", False),
        ("devs react que quieren remoto", True),
    ],
)
def test_on_site_written_with_a_hyphen_or_as_a_refused_wish(
    extractor: SlotExtractor, message: str, remote: bool
) -> None:
    assert extractor.extract(message).remote is remote


def test_pero_no_a_los_de_rules_the_skill_out(extractor: SlotExtractor) -> None:
    slots = extractor.extract("contacta devs react en cadiz pero no a los de angular")
    assert slots.skills == ["react"]
    assert slots.exclude_skills == ["angular"]


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("busca devs php con experiencia en granada", "senior"),
        ("hay gente go con experiencia?", "senior"),
        ("devs con experiencia en kotlin", None),  # experience in a skill: no level
        ("perfiles con experiencia con docker", None),
    ],
)
def test_con_experiencia_is_senior_unless_it_names_a_skill(
    extractor: SlotExtractor, message: str, level: str | None
) -> None:
    assert extractor.extract(message).seniority == level
