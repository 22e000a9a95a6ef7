"""Write simple, original children's stories, the kind a three-year-old could follow.

This is where the bundled corpus (`src/minigpt/corpus/stories.txt`) comes from. It is a
build-time tool: the runtime package ships only the stories, not this generator. A character-level model needs
text that is simple, correct and varied, so every story is put together in four steps:

1. Cast. Pick a hero (a child or a small animal), a friend of the same sort, and a parent.
   Each character carries a name and the pronouns that go with it (she/her/her/herself or
   he/him/his/himself), so the text can never call a girl "he".
2. Plot. Pick one of a dozen story shapes ("arcs"): finding a treasure, losing a toy, being
   scared and then brave, helping an animal, a rainy day, a quarrel and making up, and so on.
   Each arc picks its props (a toy, a place, a fear) and then reads out a script.
3. Sentences. A script has one line per sentence slot. A line holds alternatives separated
   by "|", such as "{He} felt sad.|Big tears rolled down {his} cheeks."; one is drawn at
   random and its blanks are filled from the cast and the props. Many alternatives per slot
   keep any one sentence from repeating too often, which a language model would memorise.
   A line may start with a chance ("60% ...") to be said only sometimes, and a line "~"
   starts a new paragraph.
4. Layout. Paragraphs go one per line, and stories are separated by a line holding
   <|endoftext|>, the format of the TinyStories text files.

This module is the engine (steps 1, 2 and 4, and the filling-in of step 3); the words it
draws from (names, props, tables and scripts) live in `tools/storydata.py`.

All randomness comes from one `random.Random(seed)` that only ever draws from lists (never
from sets, whose order depends on hashing), so a seed gives byte-identical stories on any
machine. Rebuild the shipped file from the repository root with
`python -m tools.storygen --out src/minigpt/corpus/stories.txt`.
"""

import argparse
import random
from pathlib import Path

from .storydata import (
    ALL_NAMES, ANIMAL_KINDS, BOYS, BRAVE, CLOSING, COLORS, FEARS, FEELINGS, FIND, FIND_KEEP,
    FIND_RETURN, FINDS, GIRLS, GROW, HELP, HERO_ADJS, HOBBIES, HOME_SPOTS, HOMES, INDOORS, INTRO,
    INTRO_FRIEND, IRREGULAR, LAST_PLACES, LESSON, LESSONS, LOOKS, LOST, LOST_END, LOST_FRIEND,
    LOST_PARENT, LUNCHES, MAKE, MAKES, MISHAPS, NEIGHBORS, NEW_FRIEND, PET_NAMES, PLACES, PRONOUNS,
    QUARREL, QUARRELS, RAINY, SEEDS, SHARE, SHARE_SNACK, SHARE_TOY, SIZES, SNACKS, SNOW_DAYS, TOYS,
    TRIP, TRIP_FRIEND_ALONG, TROUBLES, WEAR, WEATHER, WHEN,
)

__all__ = ["ALL_NAMES", "DEFAULT_N", "DEFAULT_SEED", "SEPARATOR", "Teller", "generate_stories",
           "main", "tell_story"]

SEPARATOR = "\n<|endoftext|>\n"
DEFAULT_N = 400  # about 300 KB: plenty for a small model to learn words, small enough to ship
DEFAULT_SEED = 1234


def article(phrase: str) -> str:
    """Put "a" or "an" in front of a phrase, by its first letter (good enough for our words)."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def past(phrase: str) -> str:
    """Turn "go down the slide" into "went down the slide" (only the first word is a verb)."""
    verb, _, rest = phrase.partition(" ")
    if verb in IRREGULAR:
        verb = IRREGULAR[verb]
    elif verb.endswith("e"):
        verb += "d"
    elif verb.endswith("y") and verb[-2] not in "aeiou":
        verb = verb[:-1] + "ied"
    else:
        verb += "ed"
    return f"{verb} {rest}".strip()


def pronoun_fields(prefix: str, gender: str) -> dict:
    """Blanks {he} {him} {his} {himself} {He} {His}; the friend's are {fhe} ... {Fhe} {Fhis}."""
    he, him, his, himself = PRONOUNS[gender]
    out = {prefix + "he": he, prefix + "him": him, prefix + "his": his, prefix + "himself": himself}
    for key, word in (("he", he), ("his", his)):  # forms that start a sentence
        out[prefix.upper() + key if prefix else key.capitalize()] = word.capitalize()
    return out


class Teller:
    """Holds one story's blanks and cast, and turns script lines into paragraphs."""

    def __init__(self, rng: random.Random, fields: dict, cast: list):
        # cast: (name, gender) of each character, which the tests use to check pronouns
        self.rng, self.blanks, self.cast = rng, fields, cast
        self.paras, self.current = [], []

    def pick(self, options):
        return self.rng.choice(options.split("|") if isinstance(options, str) else options)

    def fill(self, template: str) -> str:
        """Pick one alternative and fill its blanks. A blank may hold a template of its own (a
        hobby "help {his} {mom}", or a whole line of alternatives standing alone as "{ask}")."""
        text = template
        # blanks nest at most three deep (a fix that names {Helper}, which is {His} {mom})
        for _ in range(4):
            text = self.pick(text)
            if "{" not in text:
                break
            text = text.format(**self.blanks)
        return text

    def tell(self, script: str):
        for line in script.strip().splitlines():
            line = line.strip()
            # skipping some breaks (never the first) varies the number of paragraphs
            if line == "~":
                if not self.paras or self.rng.random() < 0.8:
                    self.paragraph()
                continue
            head, _, rest = line.partition("% ")
            if head.isdigit():  # "60% ..." is said 60% of the time
                if self.rng.random() * 100 >= int(head):
                    continue
                line = rest
            text = self.fill(line)
            if text:  # a blank that holds "" (a friend who did not come along) says nothing
                self.current.append(text)

    def paragraph(self):
        if self.current:
            self.paras.append(" ".join(self.current))
            self.current = []

    def text(self) -> str:
        self.paragraph()
        return "\n".join(self.paras)


def new_character(rng: random.Random, sort: str, taken: list) -> tuple:
    """(name, gender, kind) for a child or an animal, with a name nobody in the story has."""
    gender = rng.choice(["f", "m"])
    pool = PET_NAMES if sort == "animal" else (GIRLS if gender == "f" else BOYS)
    name = rng.choice([n for n in pool if n not in taken])
    kind = rng.choice(ANIMAL_KINDS) if sort == "animal" else ("girl" if gender == "f" else "boy")
    return name, gender, kind


def cast_story(rng: random.Random) -> Teller:
    """Choose the hero, friend, parent and story-wide props; return a Teller ready to tell."""
    sort = "animal" if rng.random() < 0.25 else "child"
    hero = new_character(rng, sort, [])
    friend = new_character(rng, sort, [hero[0]])
    # a bunny and a fox read better than two bunnies
    while friend[2] == hero[2] and sort == "animal":
        friend = friend[:2] + (rng.choice(ANIMAL_KINDS),)
    parent = rng.choice(["f", "m"])
    place = rng.choice(PLACES)
    hobby, hobby2 = rng.sample(HOBBIES, 2)
    hadj = rng.choice(HERO_ADJS)
    wear = f"{rng.choice(COLORS)} {rng.choice(WEAR)}"
    mom = "mom" if parent == "f" else "dad"
    blanks = {
        "H": hero[0], "kind": hero[2], "a_hadj": article(hadj), "F": friend[0], "fkind": friend[2],
        "a_fkind": article(friend[2]), "mom": mom, "Mom": mom.capitalize(),
        "home": rng.choice(HOMES[sort].split("|")), "hobby": hobby, "hobby2": hobby2,
        "look": rng.choice(LOOKS[sort].split("|")), "wear": wear, "a_wear": article(wear),
        "royal": "queen" if hero[1] == "f" else "king", "feeling": rng.choice(FEELINGS),
        "When": rng.choice(WHEN), "weather": WEATHER,
        "place": place[0].split(" ", 1)[1], "at_place": place[0], "At_place": place[0].capitalize(),
        "acts": place[1].split("; "), "sight": rng.choice(place[2].split("; ")),
        "spot": rng.choice(place[3].split("; ")),
    }
    blanks.update(pronoun_fields("", hero[1]), **pronoun_fields("f", friend[1]),
                  **pronoun_fields("p", parent))
    return Teller(rng, blanks, [(hero[0], hero[1]), (friend[0], friend[1]), (mom, parent)])


# ---- the arcs: each picks its props from storydata, then tells its scripts ---------------
def arc_find(s: Teller):
    noun, adjs, ownable = s.pick(FINDS)
    s.blanks.update(find=noun, a_find=article(f"{s.pick(adjs.split('; '))} {noun}"))
    s.tell(INTRO + FIND)
    if ownable == "y" and s.rng.random() < 0.7:  # give it back to a neighbor who lost it
        gender = s.pick(["f", "m"])
        s.blanks.update(O=s.pick(NEIGHBORS[gender]), **pronoun_fields("o", gender))
        s.cast.append((s.blanks["O"], gender))
        s.tell(FIND_RETURN)
    else:
        s.tell(FIND_KEEP)


def arc_lost(s: Teller):
    noun, use = s.pick(TOYS)
    last, found = s.pick(LAST_PLACES)
    s1, s2, s3 = s.rng.sample(HOME_SPOTS, 3)
    a_toy = article(f"{s.pick(SIZES)} {s.pick(COLORS)} {noun}")
    s.blanks.update(toy=noun, use=use, last=last, Last=last.capitalize(), found=found,
                    s1=s1, s2=s2, s3=s3, a_toy=a_toy, a_toy_bare=a_toy.replace(noun, "one"))
    s.tell(INTRO + LOST + s.pick([LOST_PARENT, LOST_FRIEND]) + LOST_END)


def arc_share(s: Teller):
    if s.rng.random() < 0.5:
        toy, _ = s.pick(TOYS)
        a_thing = article(f"{s.pick(SIZES)} {s.pick(COLORS)} {toy}")
        s.blanks.update(SHARE_TOY, thing=toy, a_thing=a_thing)
    else:
        snack, holder = s.pick(SNACKS)
        s.blanks.update(SHARE_SNACK, thing=snack, a_thing=f"{holder} {snack}")
    s.tell(INTRO + SHARE)


def arc_brave(s: Teller):
    fear, feel, attempt, result = s.pick(FEARS)
    coach = s.pick(["{F}", "{his} {mom}"])  # one helper stays with the hero from start to end
    s.blanks.update(fear=fear, fear_feel=feel, attempt=attempt, result=result, coach=coach,
                    Coach=coach.replace("{his}", "{His}"))
    s.tell(INTRO_FRIEND + BRAVE)


def arc_help(s: Teller):
    # a kitten hero does not rescue a kitten
    rows = [r for r in TROUBLES if r[0] != s.blanks["kind"]]
    animal, where, trouble, help_, end = s.pick(rows)
    s.blanks.update(animal=animal, where=where, trouble=trouble, help=help_, end=end)
    s.tell(INTRO + HELP)


def arc_trip(s: Teller):
    acts = s.rng.sample(s.blanks["acts"], 3)
    mishap, fix = s.pick(MISHAPS)
    if s.rng.random() < 0.5:  # bring the friend along; then the friend is the one who helps
        s.blanks.update(friend_along=TRIP_FRIEND_ALONG, Helper="{F}")
    else:
        s.blanks.update(friend_along="", Helper="{His} {mom}")
    s.blanks.update(a1=past(acts[0]), a2=past(acts[1]), a3=past(acts[2]), a1_base=acts[0],
                    lunch=s.pick(LUNCHES), mishap=mishap, fix=fix)
    s.tell(INTRO + TRIP)


def arc_rainy(s: Teller):
    indoor, detail = s.pick(INDOORS)
    s.blanks.update(indoor=indoor, indoor_detail=detail, act=s.pick(s.blanks["acts"]))
    s.tell(INTRO + RAINY)


def arc_make(s: Teller):
    goal, how, problem, fix, finish = s.pick(MAKES)
    s.blanks.update(goal=goal, goal_said=goal.replace("{his}", "my"),  # "for her mom" aloud
                    how=how, problem=problem, fix=fix, finish=finish)
    if "snow" in goal:  # a snowman needs a winter day, whatever day the cast was given
        s.blanks["When"] = s.pick(SNOW_DAYS)
    s.tell(INTRO_FRIEND + MAKE)


def arc_lesson(s: Teller):
    rule, act, oops, fix, lesson = s.pick(LESSONS)
    s.blanks.update(rule=rule, act=act, oops=oops, fix=fix, lesson=lesson)
    s.tell(INTRO + LESSON)


def arc_quarrel(s: Teller):
    start, hline, fline, fair = s.pick(QUARRELS)
    s.blanks.update(start=start, hline=hline, fline=fline, fair=fair)
    s.tell(INTRO + QUARREL)


def arc_new_friend(s: Teller):
    a1, a2 = [past(a) for a in s.rng.sample(s.blanks["acts"], 2)]
    s.blanks.update(a1=a1, a2=a2)
    s.tell(INTRO + NEW_FRIEND)


def arc_grow(s: Teller):
    seed, grown, last = s.pick(SEEDS)
    s.blanks.update(seed=seed, grown=grown, last=last)
    s.tell(INTRO + GROW)
ARCS = [arc_find, arc_lost, arc_share, arc_brave, arc_help, arc_trip, arc_rainy, arc_make,
        arc_lesson, arc_quarrel, arc_new_friend, arc_grow]


def tell_story(rng: random.Random, arc=None) -> Teller:
    """Tell one story; the Teller keeps the cast, which the tests use to check pronouns."""
    s = cast_story(rng)
    (arc or rng.choice(ARCS))(s)
    s.tell(CLOSING)
    return s


def generate_stories(n: int, seed: int = 0) -> list[str]:
    """Return n stories; the same (n, seed) always gives the same stories."""
    rng = random.Random(seed)
    stories = []
    while len(stories) < n:
        # Deal the arcs like a deck of cards, so each kind of story is told equally often.
        for arc in rng.sample(ARCS, len(ARCS))[: n - len(stories)]:
            stories.append(tell_story(rng, arc).text())
    return stories


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the bundled children's story corpus.")
    parser.add_argument("--out", type=Path, required=True, help="where to write the stories")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="how many stories")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    text = SEPARATOR.join(generate_stories(args.n, args.seed))
    args.out.write_bytes(text.encode("ascii"))  # ascii: fails loudly if a stray character slips in
    print(f"wrote {args.n} stories, {len(text)} bytes, to {args.out}")
if __name__ == "__main__":
    main()
