"""The words of the story generator: names, props, and the scripts that the arcs read out.

Everything a story can say lives here; `storygen` holds the machinery that casts a story,
draws from these lists and fills in the blanks. Change a word here and the shipped corpus
changes too, so rebuild `stories.txt` afterwards (`python -m tools.storygen --out
src/minigpt/corpus/stories.txt`; a test compares it with a fresh run).

Two plain-text formats keep the long lists readable:

- A script (`script` of a triple-quoted string) has one line per sentence slot.
  Alternatives are separated by "|", blanks such as {H} or {his} are filled from the cast
  and the props, a line may start with a chance ("60% ...") to be said only sometimes, and a
  line "~" starts a new paragraph (`storygen.Teller.tell` reads them).
- A table (`table` of a triple-quoted string) has one row per line, its fields separated by
  " // "; the comment above each table names its fields.

A line too long for the page goes on in indented lines below it. An indented line is joined
back onto the line above: directly when it starts with "|" (the next alternative), with one
space otherwise (the next " // " field, or the rest of a long sentence). The wrapping is only
for the eye: the engine sees one long line per sentence slot and per table row.
"""


def unwrap(text: str) -> str:
    """Join each indented line onto the line above it, as the module docstring describes."""
    lines = []
    for line in text.split("\n"):
        if line.startswith(" ") and lines:
            rest = line.lstrip()
            lines[-1] += rest if rest.startswith("|") else " " + rest
        else:
            lines.append(line)
    return "\n".join(lines)


def script(text: str) -> str:
    """A script as the engine reads it: one line per sentence slot, wrapped lines joined up."""
    return unwrap(text)


def table(text: str) -> list[list[str]]:
    """Parse one row per line, fields split by " // "; keeps long word lists compact."""
    return [[f.strip() for f in line.split(" // ")] for line in unwrap(text).strip().splitlines()]


# ---- the cast --------------------------------------------------------------------------
# Names avoid everyday words (no "Daisy", "Ivy" or "Sprout"), so a capital letter never has to
# decide between a name and a flower, and avoid a final "s", so "{H}'s" always reads right.
GIRLS = ("Mia Lily Emma Ava Zoe Lucy Ella Anna Rosie Sara Maya Ruby Nora Chloe Grace Hannah Molly "
         "Amy Kate Jenny Sophie Bella Lila Tara Nina Clara Lena Fiona Wendy Julia Lisa Mary Alice "
         "Ellie Megan").split()
BOYS = ("Tom Ben Max Sam Leo Jack Tim Finn Noah Eli Jake Owen Luke Oscar Henry Milo Theo Adam "
        "Dan Ryan Kai Toby Liam Alex Joe Hugo Ethan Charlie Jamie Billy Peter Freddie Oliver Nick "
        "Bobby").split()
PET_NAMES = ("Pip Coco Pepper Nutmeg Biscuit Tuffy Muffin Peanut Ziggy Bingo Pogo Dottie Rusty "
             "Tilly Benny Hopper Momo Luna Ollie Squeaky").split()
ALL_NAMES = GIRLS + BOYS + PET_NAMES
ANIMAL_KINDS = "bunny puppy kitten bear fox squirrel mouse duck owl pig lamb frog hedgehog".split()
NEIGHBORS = {"f": "Mrs. Rose|Mrs. Bell|Mrs. Plum|Mrs. Day|Grandma Sue|Miss Penny".split("|"),
             "m": "Mr. Brown|Mr. Green|Mr. Gray|Mr. Hill|Grandpa Ted|Mr. Oak".split("|")}
PRONOUNS = {"f": ("she", "her", "her", "herself"), "m": ("he", "him", "his", "himself")}
HERO_ADJS = ("little|kind little|happy little|curious little|shy little|cheerful little|"
             "playful little|sweet little|clever little|busy little|friendly little|"
             "gentle little").split("|")
HOMES = {"child": "a small town|a little house by the sea|a cozy house near the woods|a big city|"
                  "a quiet village|a yellow house on a hill|a white cottage by the river|"
                  "a blue house with a red door",
         "animal": "a big green forest|a sunny meadow|a quiet wood|a field by the river|"
                   "a cozy hole under an old oak tree|a little den near the pond"}
HOBBIES = ("play outside|sing songs|draw pictures|run and jump|look at picture books|dance|"
           "play with {his} friends|help {his} {mom}|pick flowers|splash in puddles|"
           "build tall towers with blocks|watch the birds|play pretend|go on long walks|"
           "climb trees|play hide and seek|count the stars|make funny faces|hum little tunes|"
           "play ball").split("|")
WHEN = ("One day|One sunny day|One morning|One bright morning|One afternoon|One warm afternoon|"
        "Early one morning|One Saturday|One fine day|One spring day|One summer day|"
        "One cool autumn day|One windy day|One Sunday morning").split("|")
FEELINGS = "proud|happy|warm inside|glad|brave and tall|as bright as the sun".split("|")
LOOKS = {"child": "curly red hair|long brown hair|short black hair|big brown eyes|"
                  "freckles on {his} nose|a gap in {his} front teeth|rosy red cheeks|"
                  "a loud, happy laugh|yellow hair that stuck up",
         "animal": "big round eyes|a loud, happy laugh|a little hop in {his} step|"
                   "a very curious face|the biggest smile you ever saw|tiny quick feet"}
WEAR = "hat|scarf|coat|sweater|cap|raincoat|jacket|backpack".split("|")
# A blank that holds a whole line of alternatives: "50% {weather}" says one sentence of it.
WEATHER = ("The sun was warm, and the sky was bright blue.|A soft wind was blowing.|"
           "Birds were singing in the trees.|The air smelled like fresh grass.|"
           "Fluffy white clouds floated by.|The sun was shining, and the day was warm.|"
           "It was a cool, bright day.|The sky was as blue as a blueberry.|"
           "Little white clouds drifted by like sheep.|A butterfly fluttered past.")


# ---- props -----------------------------------------------------------------------------
# where (with the word that goes before it) // things to do there // things to see // spots where
# something could lie
PLACES = table("""
at the park // play on the swings; go down the slide; run on the grass; feed the ducks
    // a big red slide; ducks swimming in the pond; a man selling balloons
    // the old bench; the slide; a big tree
at the beach // build a sandcastle; splash in the waves; look for shells; dig a deep hole
    // big blue waves; white birds over the water; a little crab running sideways
    // a pile of seaweed; a big rock; a sand dune
in the forest // walk along the path; look at the tall trees; listen to the birds; jump over logs
    // a deer drinking from a stream; a squirrel with a nut; a tree as tall as a house
    // an old log; a pile of leaves; a mossy rock
in the garden // water the flowers; dig in the dirt; chase butterflies; pick berries
    // bees buzzing from flower to flower; a fat worm in the dirt; bright red tulips
    // a flower pot; the rose bush; the garden gate
on the farm // feed the hens; pet the cows; ride on the hay cart; collect eggs
    // a pink pig rolling in the mud; a baby lamb; a big red barn
    // a bale of hay; the old fence; the barn door
by the lake
    // throw stones into the water; watch the ducks; sit on the dock; paddle in a little boat
    // fish jumping out of the water; a family of ducks; a tall gray bird standing on one leg
    // the dock; a wet rock; the tall reeds
in the meadow // pick flowers; chase butterflies; roll in the grass; look for bugs
    // butterflies of every color; a bunny hopping in the grass; yellow flowers everywhere
    // a patch of clover; a tall flower; an anthill
on the big hill // roll down the grass; fly a kite; have a picnic; look at the town below
    // the whole town far below; clouds shaped like animals; a windmill turning slowly
    // a big stone; a bush; the top of the hill
by the river
    // throw sticks into the water; look for frogs; walk over the little bridge; skip stones
    // a boat floating by; a frog on a lily pad; a bird diving for fish
    // the little bridge; a smooth stone; the muddy bank
""")
IRREGULAR = dict(p.split(":") for p in (
    "build:built dig:dug swim:swam ride:rode go:went fly:flew eat:ate feed:fed see:saw throw:threw "
    "run:ran sit:sat make:made find:found take:took sing:sang draw:drew have:had pet:petted "
    "skip:skipped").split())
TOYS = table("""
ball // throw it high into the air
kite // fly it in the wind
teddy bear // hug it tight at night
toy car // race it down the hall
doll // sing it little songs
toy train // push it along its track
toy boat // sail it in the bath
drum // bang on it, boom, boom, boom
yo-yo // spin it up and down
wagon // pull it around the yard
stuffed bunny // carry it everywhere
toy robot // make it walk and beep
toy dinosaur // make it roar at the cat
""")
COLORS = "red blue green yellow orange purple pink".split()
SIZES = "little big small new shiny bright".split()

# Every story opens by saying who the hero is and what they like.
INTRO = script("""
Once upon a time, there was {a_hadj} {kind} named {H}.
    |Once upon a time, in {home}, there lived {a_hadj} {kind} named {H}.
    |There was once {a_hadj} {kind} called {H}.|{H} was {a_hadj} {kind} who lived in {home}.
    |Long ago, in {home}, lived {a_hadj} {kind} named {H}.
    |In {home}, there lived {a_hadj} {kind}. {His} name was {H}.
    |Once there was {a_hadj} {kind} named {H}.|This is a story about {a_hadj} {kind} named {H}.
    |Not long ago, {a_hadj} {kind} named {H} lived in {home}.
40% {He} had {look}.|{He} had {look}, and {he} always wore {his} {wear}.
    |{H} had {look} and {a_wear} that {he} wore every day.
85% {He} loved to {hobby}.|{He} liked to {hobby} and {hobby2}.|Every day, {he} liked to {hobby}.
    |{His} favorite thing was to {hobby}.|More than anything, {he} loved to {hobby}.
    |{H} liked to {hobby}, and {he} also liked to {hobby2}.
    |When the sun was up, {H} wanted to {hobby}.
""")

# Arcs in which the friend turns up without an introduction of their own start with this.
INTRO_FRIEND = INTRO + script("""
{His} best friend was {a_fkind} named {F}.|{H} had a good friend, {a_fkind} named {F}.
    |{H} and {his} friend {F} liked to play together every day.
    |{H} lived next door to {his} best friend, {F}.
    |{H} was never far from {his} best friend, {a_fkind} called {F}.
""")


# ---- the arcs: props for each kind of story, then its script ---------------------------

# -- finding something shiny, then giving it back or keeping it (arc_find) ---------------
# noun // adjectives // could it belong to someone? (y/n)
FINDS = table("""
key // shiny; tiny gold; old silver // y
stone // smooth blue; round white; sparkly gray // n
bell // tiny silver; little gold // y
feather // long blue; soft white; bright red // n
ring // little gold; shiny silver // y
coin // shiny; old gold // n
marble // green glass; blue glass; swirly red // n
locket // little heart-shaped; shiny gold // y
toy whistle // small wooden; bright red // y
pinecone // big brown; perfect little // n
""")
FIND = script("""
~
{When}, {H} went to {place} with {his} {mom}.|{When}, {H} was playing {at_place}.
    |{When}, {H} and {his} {mom} went for a walk to {place}.|{When}, {H} ran off to {place} to play.
    |{When}, {H} skipped down the path to {place}.
50% {weather}
Near {spot}, {he} saw something shine in the sun.|Something was shining near {spot}.
    |{H} saw a little sparkle next to {spot}.|By {spot}, something caught {his} eye.
    |All of a sudden, {he} spotted something by {spot}.
{He} bent down and picked it up. It was {a_find}!|{He} ran over to look. It was {a_find}!
    |{He} brushed off the dirt and gasped. It was {a_find}!
    |{He} picked it up and turned it over in {his} hand. It was {a_find}.
~
"Look what I found!" {H} said to {his} {mom}.|"{Mom}, {Mom}, come and see!" {H} called.
    |"Wow, look at this {find}!" {H} shouted, holding it up high.
    |{H} ran to {his} {mom}. "Look! I found a treasure!" {he} said.
50% {His} {mom} bent down to look at the {find}.|{His} {mom} held it up to the light.
    |{His} {mom} looked at it closely.
""")
FIND_RETURN = script("""
"It is very pretty," said {his} {mom}. "But someone may be missing it."
    |"What a special {find}," {his} {mom} said. "I wonder who lost it."
    |"This {find} must belong to someone," {his} {mom} said. "Let's find out who."
    |"Someone must be sad without this," said {his} {mom}.
80% {H} thought about how sad {he} would feel if {he} lost something special.
    |{H} wanted to keep it, but {he} knew it was not {his}.
    |{H} held it tight. It was so pretty! But {he} knew what to do.
~
They walked down the lane and asked everyone they met.|They knocked on doors all along the street.
    |They showed the {find} to everyone {at_place}.|They asked the people walking by, one by one.
At last, they met {O}, who was looking at the ground with a sad face.
    |Soon they saw {O}. {Ohe} was looking under every bush.
    |Then they found {O} sitting on a step, looking very sad.
    |After a while, they saw {O}, who was searching the grass with a worried look.
"Is this your {find}?" asked {H}.|"Did you lose this?" {H} asked, holding out the {find}.
    |"Excuse me," said {H}. "Is this {find} yours?"
"My {find}!" cried {O}. "I looked for it all day. Thank you so much!"
    |"Oh, yes!" said {O}. "It was a gift from my mother. Thank you!"
    |{O} smiled a big smile. "You are a very kind {kind}," {ohe} said.
    |{O} clapped {ohis} hands. "I thought it was lost forever!" {ohe} said.
70% {Ohe} gave {H} a warm cookie and a big hug.|{Ohe} gave {H} a shiny red apple to say thank you.
    |{Ohe} gave {H} a pat on the head and a sweet smile.
    |{Ohe} gave {H} a little flower from {ohis} garden.
~
{H} felt warm inside. Giving the {find} back felt even better than keeping it.
    |On the way home, {H} held {his} {mom}'s hand and smiled. Doing the right thing felt good.
    |From that day on, {H} always tried to help others find what they had lost.
    |{H} learned that being honest makes everyone happy, even you.
    |"I am proud of you," said {his} {mom}, and {H} smiled all the way home.
""")
FIND_KEEP = script("""
"What a treasure!" said {his} {mom}. "You can keep it."
    |"That is a lovely {find}," {his} {mom} said. "It can be your treasure."
    |"You have sharp eyes," {his} {mom} said with a smile.
    |"Nobody is looking for it, so it can be yours," said {his} {mom}.
~
{H} put the {find} in {his} pocket and carried it home.|{H} held the {find} tight all the way home.
    |{H} skipped all the way home with {his} new treasure.
    |{H} carried the {find} home as if it was made of glass.
{He} put it in a little box with {his} other treasures.|{He} put it on the shelf by {his} bed.
    |The next day, {he} showed it to {his} friend {F}, who said it was the best {find} ever.
    |{He} gave it a name and a soft bed made of cotton.
Every night, {H} looked at {his} {find} and smiled.
    |{H} decided it was a lucky {find}, and {he} kept it forever.
    |It was the best day {H} could remember.
    |Whenever {H} felt sad, {he} held {his} {find}, and {he} felt better.
""")

# -- losing a favorite toy and finding it again (arc_lost) -------------------------------
HOME_SPOTS = ("under the bed|in the toy box|behind the couch|in the kitchen|under the table|"
              "in the closet|behind the door|under the pillows|in the laundry basket|"
              "on the high shelf").split("|")

# where the hero last played with it // where it turns up there
LAST_PLACES = table("""
in the garden // under a big green leaf
in the sandbox // half buried in the sand
in the car // under the back seat
on the porch // next to the flower pot
by the front door // inside a rain boot
in the backyard // in the cat's basket, with the cat asleep right beside it
at the park // under the bench, a little wet from the grass
in the bath // behind the bubble bottles
""")
LOST = script("""
{His} favorite toy was {a_toy}.|{H} had {a_toy} that {he} loved very much.
    |{H} had a favorite toy. It was {a_toy}.
    |Of all {his} toys, {H} loved {his} {toy} the most. It was {a_toy_bare}.
{He} liked to {use}.|Every day, {he} would {use}.|{He} took it everywhere and liked to {use}.
    |{H} liked to {use} all day long.
~
{When}, {H} could not find {his} {toy}.|{When}, {H} looked for {his} {toy}, but it was gone!
    |{When}, {H} wanted to play, but {his} {toy} was missing.
    |{When}, {H} went to get {his} {toy}, but it was not in its place.
{He} looked {s1}. {He} looked {s2}. {He} even looked {s3}.
    |{He} searched {s1} and {s2}, and then {s3}.
    |First {he} looked {s1}. Then {he} looked {s2}. But the {toy} was not there.
    |{He} looked {s1} and {s3}. No {toy}!
{H} felt very sad.|Big tears rolled down {his} cheeks.|{H} sat down on the floor and began to cry.
    |{H} was so sad that {he} did not want to eat {his} lunch.|{H}'s lip started to shake.
~
""")
LOST_PARENT = script("""
{His} {mom} sat down next to {him}. "What is wrong, {H}?" {phe} asked.
    |"Why are you sad, {H}?" asked {his} {mom}.
    |{His} {mom} gave {him} a hug. "Tell me what happened," {phe} said.
"I lost my {toy}," said {H}.|"My {toy} is gone," {H} cried.
    |"I can't find my {toy} anywhere," {H} said.
    |"My {toy} is lost, and I looked everywhere," {H} said with a sniff.
"Let's think," said {his} {mom}. "Where did you play with it last?"
    |"Don't worry," said {his} {mom}. "We will find it together. Where did you have it last?"
    |"Things are never lost forever," said {his} {mom}. "Where did you last see it?"
    |"Let's be detectives," said {his} {mom}. "What did you do this morning?"
""")
LOST_FRIEND = script("""
Just then, {his} friend {F} came over. "Why are you crying?" {fhe} asked.
    |Soon {his} friend {F} came to play and saw {H}'s sad face. "What happened?" {fhe} asked.
    |Then {his} friend {F} knocked on the door. "Why do you look so sad?" {fhe} asked.
"My {toy} is lost," said {H}.|"I can't find my {toy}," {H} said with a sniff.
    |"My {toy} is gone," said {H}.
"I will help you look," said {F}. "Think hard. Where were you playing with it?"
    |"Two eyes are good, but four eyes are better," said {F}. "Let's look together."
    |"I am good at finding things," said {F}. "Where did you see it last?"
    |"Don't be sad," said {F}. "Toys like to hide. We just have to think like a {toy}."
""")
LOST_END = script("""
{H} thought hard. "I played with it {last}!" {he} said.|Then {H} remembered. "I had it {last}!"
    |{H} closed {his} eyes and thought. "{Last}!" {he} said.
    |{H} scratched {his} head. Then {he} remembered playing {last}.
So they looked {last}. There was the {toy}, {found}!
    |They went to look {last}, and there it was, {found}!
    |They hurried to look {last}. And there, {found}, was the {toy}!
~
{H} hugged {his} {toy} tight.|{H} laughed and held {his} {toy} up high.|{H} jumped for joy.
    |{H} was so happy that {he} danced in a circle.
"Thank you for helping me!" {he} said.|"I will never lose you again," {H} told the {toy}.
    |"We found it, we found it!" {H} sang.
From that day on, {H} always put {his} {toy} away in the toy box.
    |{H} promised to take good care of {his} toys from now on.
    |That night, {H} went to sleep with {his} {toy} right beside {him}.
    |{H} learned to put things back where they belong.
    |Now {H} keeps {his} {toy} in a special place, so it never gets lost.
""")

# -- not sharing, then sharing (arc_share) -----------------------------------------------
SNACKS = table("""
cookies // a plate of
cherries // a bowl of
strawberries // a basket of
crackers // a box of
grapes // a bunch of
blueberries // a cup of
""")
SHARE = script("""
~
{When}, {his} grandma gave {H} {a_thing}.|{When}, {H} got {a_thing} as a surprise.
    |{When}, {his} {mom} gave {H} {a_thing}.
    |{When}, {H} found {a_thing} waiting on the kitchen table, just for {him}.
{H} took it to {place}.|{H} carried it all the way to {place}.|{H} ran outside with it.
50% It was the best {thing} {he} had ever seen.|{He} looked at it again and again.
    |{H} could not stop smiling at it.
{He} did not want anyone else to touch it.|{He} wanted it all for {himself}.
    |"This is all mine," {he} thought.
~
Soon {his} friend {F} came by.|Then {his} friend {F} came running over.
    |{At_place}, {he} met {his} friend {F}.|Before long, {his} friend {F} walked up to {him}.
{ask}
"No! It is mine," said {H}, and {he} held it close.|"No," said {H}. "It is all mine."
    |{H} turned away. "No, you can't," {he} said.
    |{H} shook {his} head. "It is mine, not yours," {he} said.
{F} looked sad and walked away.|{F}'s smile went away. {Fhe} sat down all alone.
    |{F} looked down at {fhis} shoes and did not say a word.
    |{F}'s eyes filled with tears, and {fhe} went to sit under a tree.
~
{alone}
{He} thought about how {F} must feel.|{He} remembered a time when {he} felt left out too.
    |{He} did not like the sad feeling in {his} chest.
{offer}
{F} smiled a big smile.|{F}'s face lit up like the sun.|{F} clapped {fhis} hands.
    |{F} wiped {fhis} eyes and smiled.
~
{together}
{H} learned that sharing makes everyone happy.|Sharing made the fun twice as big.
    |{H} found out that things are better when you share them with a friend.
    |From then on, {H} always shared with {his} friends.
    |{H} knew now that a friend to share with is the best gift of all.
""")

# the lines of SHARE that differ between sharing a toy and sharing a snack
SHARE_TOY = dict(
    ask='"Can I play too?" asked {F}.|"Wow! Can I have a turn?" {F} asked.'
        '|"That is a great {thing}! Can we play with it together?" asked {F}.'
        '|"Please, may I try your {thing}?" {F} asked.',
    alone="{H} played by {himself}, but it was not much fun."
          "|Soon {H} saw that playing alone was no fun at all."
          "|{H} tried to have fun, but {he} kept looking at {F}.",
    offer='{H} walked over to {F}. "I am sorry, {F}," {he} said. '
          '"Do you want to play with my {thing}?"'
          '|"{F}, come back!" called {H}. "Let\'s play with it together."'
          '|{H} held out the {thing}. "You can have a turn," {he} said. "I should have shared."',
    together="They took turns and laughed until the sun went down."
             "|They played with the {thing} together all afternoon."
             "|First {H} had a turn, then {F} had a turn, and they both giggled and giggled.")
SHARE_SNACK = dict(
    ask='"Can I have some?" asked {F}.|"Those {thing} look yummy," said {F}. "May I have one?"'
        '|"I love {thing}," said {F}. "Can I try one?"',
    alone="{H} ate one, but it did not taste as good as {he} thought."
          "|{H} ate some, but {he} had a funny feeling in {his} tummy."
          "|{H} ate a few all alone, but they did not taste very sweet.",
    offer='{H} walked over to {F}. "I am sorry I was mean," {he} said. '
          '"Here, let\'s share my {thing}."'
          '|"{F}, wait!" called {H}. "You can have half of my {thing}."'
          '|{H} held out the {thing}. "Take some," {he} said. "I was being greedy."',
    together="They sat on the grass and ate the {thing} together."
             "|They shared the {thing} one by one, one for {H} and one for {F}."
             "|The two friends ate the {thing} side by side, and they tasted much sweeter now.")

# -- being scared, then brave (arc_brave) ------------------------------------------------
# what scares the hero // how it feels // what the hero tries // how it turns out
FEARS = table("""
the big slide
    // The big slide at the playground was so tall that {he} always went
        down the little one instead.
    // {H} climbed up the steps, one at a time. At the top, {he} took a deep breath and let go.
    // Whoosh! {He} zoomed all the way down and landed in the sand with a laugh.
the dark // At night, when the light went off, {his} room seemed full of shapes and shadows.
    // {His} {mom} turned on the light, and {H} looked at the scary shape in the corner.
    // It was only {his} coat hanging on a chair! {H} giggled and got back into bed.
the deep water // At the pool, {he} always stayed on the steps where the water was low.
    // {H} held {his} nose, closed {his} eyes and put {his} face in the water.
    // Then {he} kicked {his} legs and floated like a little boat.
the big dog next door // The dog was big and loud, and it barked at everyone who walked by.
    // {H} held out {his} hand very slowly and let the dog sniff it.
    // The dog licked {his} fingers, and its tail wagged and wagged. It just wanted a friend!
thunder // When a storm came, the thunder went boom, and {he} hid under the covers.
    // {H} sat by the window with {his} {mom} and counted after each flash of light.
    // The thunder was just a big noise far away. It could not hurt {him} at all.
riding a bike // Every time {he} tried, the bike wobbled, and {he} was afraid of falling.
    // {H} pushed the pedals hard while {his} {mom} held the seat. Then {phe} let go.
    // {H} rode all the way to the end of the street by {himself}!
bees // Whenever a bee buzzed near, {he} ran away and hid.
    // {H} stood very still while a bee landed on a flower right next to {him}.
    // The bee drank from the flower and flew away. It did not care about {H} at all.
the tall tree in the yard // All the big kids climbed it, but {his} legs shook when {he} looked up.
    // {H} put {his} foot on the lowest branch, and then the next, and then the next.
    // Soon {he} was sitting on a high branch, and {he} could see over the fence!
the big waves // At the beach, {he} stayed far back on the sand while the waves crashed and roared.
    // {H} held {his} {mom}'s hand and walked into the water until it came up to {his} knees.
    // A little wave splashed {his} legs, and it tickled! {H} laughed and jumped over the next one.
""")
BRAVE = script("""
But {H} was scared of {fear}.|There was one thing {H} was afraid of: {fear}.
    |But {H} had one big fear. {He} was scared of {fear}.
    |But there was one thing that made {H} shake: {fear}.
{fear_feel}
~
{When}, {coach} said, "Let's try it together!"|{When}, {coach} said, "Do you want to try today?"
    |{When}, {H} decided that {he} wanted to try.
    |{When}, {H} said to {himself}, "Today I will be brave."
"I am scared," {H} said quietly.|"What if something bad happens?" asked {H}.
    |{H}'s tummy felt funny, and {his} knees felt wobbly.|{H}'s heart beat fast, like a little drum.
"It is okay to be scared," said {coach}. "Being brave means trying anyway."
    |"You can do it," said {coach}. "I will be right here with you."
    |"Take a deep breath," said {coach}. "Just try one little step."
    |"I was scared too, the first time," said {coach}. "But it was fine, and you will be fine too."
    |"I believe in you," said {coach}. "You are braver than you think."
~
{attempt}
{result}
~
"I did it!" {H} shouted.|"Yay! I was brave!" {H} cheered.
    |"That was not so scary after all," {H} said with a grin.|"Again! Let's do it again!" {H} cried.
    |"Look at me!" {H} called. "I am not scared!"
80% {Coach} clapped and cheered.|{Coach} gave {him} a big hug.|{Coach} gave {H} a high five.
    |"You were so brave," said {coach}.
{H} felt {feeling}. {He} was not scared of {fear} anymore.
    |From then on, {H} was not afraid of {fear}.
    |{H} learned that trying something scary can feel wonderful in the end.
    |That night, {H} smiled in bed. {He} was a little braver than before.
    |{H} found out that being brave is a little bit scary, and a lot of fun.
""")

# -- helping an animal in trouble (arc_help) ---------------------------------------------
# animal // where it is // what is wrong // how the hero helps // how it ends
TROUBLES = table("""
kitten // in the backyard // a little kitten high up in a tree. It cried, "Meow! Meow!"
    // {H} ran to get {his} {mom}, who brought a ladder and climbed up slowly.
        {H} held the ladder steady.
    // Soon the kitten was safe on the ground, purring and rubbing against {H}'s legs.
bird // in the garden // a little bird sitting on the ground. One of its wings was hurt.
    // {H} gently put the bird in a soft box with a blanket and gave it some water.
    // After a few days, the wing was strong again. The bird flapped and flew up into the sky.
duckling // at the park // a baby duck all alone. It could not find its mother.
    // {H} walked slowly toward the pond, and the duckling followed {him}, peep, peep, peep.
    // At the pond, the mother duck quacked, and the baby duck swam right back to its mother.
turtle // by the lake // a little turtle trying to cross the path, but bikes kept zooming by.
    // {H} picked it up with both hands and carried it to the grass by the water.
    // The turtle poked its head out, blinked, and slid into the cool water.
bee // in the garden // a bee that had fallen into a puddle. It could not fly.
    // {H} found a big leaf and gently lifted the bee out of the water.
    // The bee dried its wings in the sun. Then it buzzed away to the flowers.
puppy // in front of the house // a little puppy that was lost. It had a tag on its collar.
    // {H} read the tag and walked the puppy all the way to the house with the green door.
    // The family that lived there hugged the puppy and thanked {H} again and again.
fish // at the beach // a little fish flapping in a tiny pool left by the waves.
    // {H} scooped it up with {his} bucket and ran to the sea.
    // The fish wiggled its tail and swam away into the big blue water.
ladybug // in the meadow // a ladybug lying on its back. Its little legs were kicking in the air.
    // {H} held out a twig, and the ladybug grabbed it and turned over.
    // The ladybug opened its red wings and flew away.
squirrel // in the forest // a young squirrel with its tail stuck under a fallen branch.
    // {H} pushed and pushed until the branch rolled away.
    // The squirrel shook its fluffy tail and ran up a tree, chattering happily.
""")
HELP = script("""
~
{When}, {H} was playing {where} when {he} heard a small sound.
    |{When}, {H} and {his} friend {F} were out walking {where}.
    |{When}, {H} was {where} with {his} {mom}.|{When}, {H} went for a walk {where}.
40% {weather}
{H} saw {trouble}|{H} looked around and saw {trouble}|There, {H} found {trouble}
    |{H} looked down and saw {trouble}
~
"Oh no! The poor {animal}," said {H}. "I have to help it."
    |"Don't worry, little {animal}," {H} whispered. "I will help you."
    |{H} wanted to help. "Hold on, little {animal}!" {he} called.
    |"It needs help," {H} said. "I know what to do."
{help}
{end}
~
70% "Goodbye, little {animal}!" {H} said, waving.|"You are safe now," {H} said softly.
    |"Be careful, little {animal}!" {H} called.
{H} felt {feeling}. Helping others is a good thing to do.
    |That night, {H} told {his} {mom} all about the {animal}.
    |{H} smiled all day long. {He} had helped a friend in need.
    |{His} {mom} said, "You were very kind today, {H}." {H} felt {feeling}.
    |{H} knew that even a small {kind} can do a big, kind thing.
""")

# -- a day out (arc_trip) ----------------------------------------------------------------
LUNCHES = ("cheese sandwiches and apples|warm soup and bread|crackers and grapes|"
           "jam sandwiches and juice|little pies and plums|rice balls and carrots").split("|")

# a small thing that goes wrong on an outing // how it is put right
MISHAPS = table("""
the wind blew {his} hat right off {his} head // {Helper} ran after it and caught it just in time.
{H} dropped {his} ice cream on the ground
    // {Helper} shared a cone with {him}, and it tasted even better.
{H} tripped on a root and scraped {his} knee
    // {Helper} helped {him} up and gave {him} a hug, and soon {he} felt better.
it started to rain a little
    // They hid under a big tree and waited, and soon the sun came out again.
a cheeky duck waddled up and ran off with {his} cracker
    // Everyone laughed, and {H} laughed the loudest.
a little dog ran up and barked at {him} // {H} was surprised, but the dog only wanted to play fetch.
{H} lost one of {his} shoes in the mud
    // {Helper} pulled it out with a loud pop, and they both laughed.
""")
TRIP = script("""
~
{When}, {H} and {his} {mom} went to {place}.|{When}, {his} {mom} said, "Let's go to {place} today!"
    |{When}, {H} could hardly wait. It was the day of the big trip to {place} with {his} {mom}!
    |{When}, {his} {mom} packed a picnic, and they set off for {place}.
{H} was so excited that {he} jumped up and down.|{H} packed a bag with a snack and a hat.
    |{H} could not stop smiling.|{H} sang a happy song all the way there.
{friend_along}
50% {weather}
~
First, they {a1}. Then they {a2}.|They {a1}, and then they {a2}.|{At_place}, they {a1}.
    |The first thing they did was {a1_base}.
60% After that, they {a3}.|Later, they {a3}.|Before lunch, they {a3} too.
60% At lunch time, they ate {lunch} on a blanket.|For lunch, they had {lunch} under a shady tree.
    |When they got hungry, they sat down and ate {lunch}.
{H} saw {sight}. "Look!" {he} said.|"Look at that!" {H} said, pointing at {sight}.
    |{H} liked {sight} best of all.|"Wow!" said {H} when {he} saw {sight}.
~
75% Then, {mishap}. {fix}|All of a sudden, {mishap}! {fix}|Just then, {mishap}. {fix}
~
When the sun began to set, they went home.|At the end of the day, everyone was very tired.
    |Soon it was time to go home.|When the sky turned pink and orange, it was time to go.
{H} fell asleep in the car with a smile on {his} face.|That night, {H} dreamed about {place}.
    |"Can we come back tomorrow?" asked {H}. "We will come again soon," said {his} {mom}.
    |It was one of the best days ever.
    |"Thank you for a happy day," {H} said, and {he} yawned a big yawn.
""")
# Said when the friend comes along on the trip (then the friend is the one who helps).
TRIP_FRIEND_ALONG = ("{H}'s friend {F} came along too.|{His} friend {F} came too, and the two "
                     "friends held hands.|{His} best friend {F} came with them.")

# -- a rainy day indoors (arc_rainy) -----------------------------------------------------
# indoor activity // what it looked like
INDOORS = table("""
build a blanket fort
    // They put a big blanket over two chairs and filled the fort with pillows.
        It was like a tiny secret house.
bake cookies
    // They mixed flour, sugar and eggs in a big bowl. Soon the whole house smelled warm and sweet.
paint pictures // {H} painted a big yellow sun, a green tree and a purple cat with a long tail.
make paper boats // They folded paper into little boats and sailed them across the bathtub.
have a tea party // {H} set out tiny cups and plates for {his} toys, and everyone had pretend tea.
put on a puppet show // They made puppets out of old socks, and {H} made them talk in funny voices.
play dress-up
    // {H} put on a big hat, a long scarf and {his} {mom}'s old boots. {He} looked so silly!
build a tall tower
    // They stacked blocks higher and higher until the tower was almost as tall as {H}.
make music
    // {H} banged on a pot with a spoon, and {his} {mom} shook a box of rice. Boom, boom, shake!
""")
RAINY = script("""
~
{When}, {H} ran to the window. Rain was falling on the grass!
    |{When}, dark clouds filled the sky, and soon rain began to fall.
    |{When}, the rain came down, drip, drop, drip.
    |{When}, {H} heard a pitter-patter on the roof. Rain!
{H} wanted to go to {place} and {act}.|{H} had planned to {act} {at_place}.
    |{H} was going to {act} {at_place} that day.
50% Raindrops ran down the window like tiny rivers.|The puddles outside grew bigger and bigger.
    |The wind blew, and the trees bent and swayed.
"Now I can't go outside," {H} said with a sigh.
    |{H} pressed {his} nose against the glass and frowned.|{H} felt as gray as the sky.
    |"Go away, rain," {H} said. "I want to play!"
~
"I have an idea," said {his} {mom}. "Let's {indoor}!"
    |{His} {mom} smiled. "How about we {indoor}?" {phe} asked.
    |Then {H} had an idea. "{Mom}, can we {indoor}?" {he} asked.
    |"Rain can be fun," said {his} {mom}. "Let's {indoor}."
{indoor_detail}
{H} laughed and had so much fun.|{H} forgot all about the rain.
    |It was even more fun than {he} thought it would be.|{H} giggled so much that {his} tummy hurt.
~
After a while, the rain stopped.|Later, the sun peeked out from behind the clouds.
    |Slowly, the gray clouds rolled away.|By the afternoon, the drops on the window had dried.
70% There was a big rainbow across the sky. "Look, a rainbow!" {H} shouted.
    |{H} saw a bright rainbow over the houses, red, orange, yellow, green, blue and purple.
    |{H} ran outside and jumped in a big puddle. Splash!
"Rainy days can be fun too," {H} said with a smile.
    |{H} learned that even a gray day can be a happy one.|Now {H} did not mind the rain at all.
    |From then on, {H} loved rainy days.|{H} decided that rain was not so bad after all.
""")

# -- making something that goes wrong, then right (arc_make) -----------------------------
# what to make // how it is made // what goes wrong // how it is fixed // the finished thing
MAKES = table("""
a birthday card for {his} {mom}
    // {He} folded a big sheet of paper and drew a red heart on the front.
    // But then {he} spilled the glue, and the card got all sticky.
    // {He} sprinkled glitter on the sticky part, and it sparkled like stars.
    // Inside, {he} wrote "I love you" in big letters.
a snowman in the yard
    // {He} rolled a small ball of snow around and around until it was big and round.
    // But every time {he} put the head on top, it fell off.
    // {F} came to help, and together they patted snow around the head until it stayed.
    // They gave the snowman two stones for eyes, a carrot for a nose and an old red scarf.
a sandcastle at the beach
    // {He} filled {his} bucket with wet sand and turned it over, again and again.
    // Then a wave came and knocked down one of the towers.
    // {H} built a little wall of sand to keep the waves away and made the tower again.
    // {He} put a shell on top of each tower and a feather on the tallest one.
a bird feeder for the garden // {He} rolled a pinecone in honey and then in lots of little seeds.
    // But the string was too short to reach the branch.
    // {His} {mom} found a longer string, and they tied it high up in the tree.
    // Soon a little red bird came and pecked at the seeds.
a paper crown // {He} cut a long strip of yellow paper into points and stuck on paper jewels.
    // But the crown was too big, and it fell down over {his} eyes.
    // {He} cut off a piece and taped it again. Now it fit just right.
    // {H} wore the crown all day and played that {he} was the {royal} of the house.
a cake for {F} // {He} and {his} {mom} mixed flour, eggs, milk and sugar in a big bowl.
    // But {he} poured in too much milk, and the batter was runny like soup.
    // {His} {mom} showed {him} how to add a little more flour and stir,
        and soon it was thick again.
    // When the cake came out of the oven, they put pink frosting and sprinkles on top.
a kite // {He} tied two sticks together and covered them with paper.
    // But when {he} ran, the kite just dragged along the ground.
    // "It needs a tail!" said {F}. So they tied a long ribbon to the bottom.
    // The kite jumped into the air and danced high above the trees.
a flower necklace // {He} picked white daisies and joined them stem to stem.
    // But the stems kept breaking.
    // {His} {mom} showed {him} how to make a tiny hole in each stem and
        push the next flower through.
    // Soon {he} had a long chain of flowers that went all the way around {his} neck.
a boat out of a box
    // {He} found an old box and painted it blue, with a big white sail made from a sheet.
    // But when {he} sat inside, the bottom of the box began to tear.
    // {F} found a flat board, and they put it inside to make the boat strong.
    // {H} and {F} sat in the boat all afternoon and sailed across a pretend sea.
""")
MAKE = script("""
~
{When}, {H} had an idea. {He} wanted to make {goal}.|{When}, {H} decided to make {goal}.
    |{When}, {H} said, "Today I will make {goal_said}!"
    |{When}, {H} looked around and thought, "I know! I will make {goal_said}."
{how}
~
{problem}
"Oh no!" said {H}.|{H} felt like giving up.|{H} frowned. This was harder than {he} thought.
    |{H} sat down with a big huff.
70% "Don't give up," said {his} {mom}. "Let's try again."
    |"Mistakes help us learn," said {his} {mom}.|{F} came over. "I can help," {fhe} said.
    |"Everyone has a hard time sometimes," said {his} {mom}. "Try one more time."
{fix}
~
{finish}
"I made it all by myself!" {H} said proudly.|"It is perfect!" said {H}.
    |{H} stepped back and smiled at what {he} had made.|"Hooray, it worked!" {H} cheered.
{H} learned that when something goes wrong, you can try again.
    |{H} felt {feeling}. It was the best thing {he} had ever made.
    |Everyone said it was wonderful, and {H} could not stop smiling.
    |{H} knew that trying again had made it even better.
""")
# A snowman needs a winter day, whatever day the cast was given.
SNOW_DAYS = "One snowy morning|One cold winter day|One frosty morning"

# -- not listening, and learning (arc_lesson) --------------------------------------------
# what the parent asks (said to the hero) // what the hero does // what happens
# // how it is put right // the lesson
LESSONS = table("""
please do not eat too many cookies before dinner
    // A little later, {H} ate one cookie, then two, then five.
    // Soon {his} tummy began to hurt, and {he} could not eat any of {his} dinner.
    // {His} {mom} gave {him} some warm tea and rubbed {his} back.
    // {H} learned that too many sweets can give you a tummy ache.
put on your coat, it is cold outside // {H} ran out to play without it.
    // The wind was cold, and soon {he} was shivering and {his} nose was red.
    // {He} ran back inside, and {his} {mom} wrapped {him} up in {his} warm coat.
    // {H} learned to listen when {his} {mom} says it is cold.
please do not play ball near the flowers
    // Soon {H} was kicking {his} ball right next to the flower bed.
    // The ball bounced into the flowers and broke three tulips.
    // {H} and {his} {mom} planted new flowers together.
    // {H} learned to play ball in the right place.
please put your toys away before bed // That evening, {H} left {his} toys all over the floor.
    // That night, {he} stepped on a block in the dark and cried, "Ouch!"
    // The next morning, {he} picked up every toy and put it in the toy box.
    // From then on, {H} always tidied up before bed.
walk slowly, the floor is wet // A minute later, {H} ran across the kitchen to get a snack.
    // {His} feet slipped, and {he} landed with a bump on {his} bottom.
    // {His} {mom} helped {him} up and gave {him} a hug.
    // {H} learned that rules are there to keep us safe.
stay close to me at the store // Then {H} saw a big toy and wandered away to look at it.
    // When {he} looked up, {his} {mom} was gone, and {he} felt very scared.
    // A kind lady at the store helped {him}, and soon {his} {mom} came running.
    // {H} held {his} {mom}'s hand for the rest of the day.
do not jump in the puddles in your new shoes
    // On the way home, there was a big, brown puddle. It looked so fun that {H} jumped right in!
    // {His} new shoes were all wet and brown with mud.
    // {H} helped {his} {mom} scrub the shoes clean, and it took a long time.
    // {H} learned to wear rain boots for puddle jumping.
do not climb too high in the apple tree // Up and up {H} went, higher and higher.
    // Soon {he} was so high that {he} was too scared to climb down.
    // {His} {mom} got a ladder and helped {him} down, one step at a time.
    // {H} learned that it is good to listen, even when climbing is fun.
be gentle with the flowers in the garden
    // In the garden, {H} pulled a flower up, roots and all, to look at it.
    // The flower drooped, and soon it was brown and dry.
    // {H} planted a new flower in its place and gave it water every day.
    // {H} learned that flowers are alive, and they need gentle hands.
""")
LESSON = script("""
~
{When}, {his} {mom} said, "{H}, {rule}."|"{H}, {rule}," said {his} {mom}.
    |Before {he} went to play, {his} {mom} said, "{H}, {rule}."
    |{His} {mom} looked at {him} and said, "{H}, {rule}."
"Okay," said {H}, but {he} was not really listening.
    |{H} nodded, but {he} was thinking about other things.|{H} said yes, but soon {he} forgot.
    |"I will," said {H}, and off {he} ran.
{act}
50% It was fun, for a little while.|At first, it was great fun.
    |{H} giggled. Nothing bad would happen, {he} thought.
~
{oops}
{H} began to cry.|{H} felt sad and a little silly.|{H} wished {he} had listened.
    |"Oh no," {H} said in a small voice.|{H}'s eyes filled with tears.
~
{fix}
"I am sorry, {Mom}," said {H}. "I should have listened."|"I will listen next time," {H} said.
    |"{Mom}, you were right," {H} said quietly.
    |"I should have done what you said," {H} told {his} {mom}.
70% "It's okay," said {his} {mom}. "Everyone makes mistakes."
    |{His} {mom} smiled. "I know you will do better next time."
    |"We all forget sometimes," said {his} {mom} softly.|{His} {mom} gave {him} a kiss on the head.
{lesson}
""")

# -- a quarrel and making up (arc_quarrel) -----------------------------------------------
# how the fight starts // what the hero says // what the friend says // how they make it fair
QUARRELS = table("""
They both ran to the red swing at the same time. // It's my turn! // No, I was here first!
    // They took turns. {H} swung ten times, and then {F} swung ten times.
There was only one cookie left on the plate, and they both reached for it. // That cookie is mine!
    // No, I saw it first! // They broke the cookie in half, and each of them got a piece.
They were drawing a big picture, and they both wanted the blue crayon for the sky.
    // I need the blue! // But I need it more!
    // {H} drew the sky, and {F} drew the sea, and they passed the crayon back and forth.
{H} wanted to play tag, but {F} wanted to play house. // Tag is more fun! // No, house is more fun!
    // They played tag first and then played house, and both games were fun.
They were flying a kite, and they both wanted to hold the string. // Let me hold it!
    // No, it's my turn to fly it!
    // They held the string together, with four hands on it, and the kite flew higher than ever.
They both wanted to dig in the shady corner of the sandbox. // This spot is mine!
    // No, I want to dig here!
    // They dug one big hole together, right in the middle, and made it a lake.
They were playing pirates, and they both wanted to be the captain. // I am the captain!
    // No, I am the captain! // They decided the ship was big enough for two captains.
They were building a tower, and they both wanted to put the last block on top.
    // I want to put it on! // No, I do!
    // They held the last block together and put it on top at the same time.
""")
QUARREL = script("""
{H} had a best friend named {F}.|{H}'s best friend was {a_fkind} named {F}.
    |{H} and {F} were best friends, and they played together every day.
    |{H} and {his} best friend {F} did everything together.
~
{When}, {H} and {F} were playing together.|{When}, {F} came over to play.
    |{When}, the two friends met {at_place}.|{When}, {H} and {F} were having fun in the yard.
{start}
"{hline}" said {H}.|"{hline}" {H} shouted.|{H} put {his} hands on {his} hips. "{hline}" {he} said.
"{fline}" said {F}.|"{fline}" {F} cried.|{F} frowned. "{fline}"
{H} stomped {his} foot, and {F} crossed {fhis} arms.
    |They pulled and pushed and did not listen to each other.|Their faces got red and cross.
    |They both shouted, and nobody listened.
~
{F} went home, and {H} sat all alone.|They did not talk for the rest of the day.
    |{F} ran off, and {H} stayed behind with a frown.
    |They both turned away and would not look at each other.
{H} felt sad inside. It was no fun without {F}.|Soon {H} missed {fhim}.
    |{H} did not feel cross anymore. {He} just felt lonely.|Playing alone was not fun at all.
60% "Friends do not always agree," said {his} {mom}. "But they can always say sorry."
    |{His} {mom} gave {him} a hug. "Why don't you go and talk to {F}?" {phe} said.
    |"How do you think {F} feels?" asked {his} {mom}.
~
{H} went to find {F}. "I am sorry, {F}," {he} said.
    |{H} knocked on {F}'s door. "I am sorry I was mean," {he} said.
    |{H} walked over to {F} and said, "I don't want to fight anymore."
    |{H} took a deep breath. "{F}, I am sorry I shouted," {he} said.
"I am sorry too," said {F}.|{F} smiled. "I am sorry too. I missed you."
    |"Me too," said {F}. "Let's be friends again."|{F} nodded. "I was cross too. Let's not fight."
{fair}
{H} and {F} stayed best friends, and they always remembered to take turns.
    |From then on, {H} knew that being a good friend is more important than being first.
    |They hugged, and the day was happy again.|{H} learned that saying sorry can fix a sad day.
    |Being friends again felt much better than being right.
    |Now {H} and {F} share, take turns, and play happily together.
""")

# -- making a new friend (arc_new_friend) ------------------------------------------------
NEW_FRIEND = script("""
80% But {H} was new in town, and {he} did not have any friends yet.
    |But {H} often felt lonely, because {he} was too shy to say hello.
    |But {H} had just moved to a new home, and {he} missed {his} old friends.
~
{When}, {H} went to {place}.|{When}, {his} {mom} took {him} to {place}.
    |{When}, {H} walked to {place} with {his} {mom}.
50% {weather}
{He} saw {a_fkind} sitting all alone near {spot}.|Near {spot}, {he} saw {a_fkind} who looked lonely.
    |There was {a_fkind} by {spot}, playing all alone.
{H} wanted to say hello, but {he} felt shy.|{H}'s heart went thump, thump, thump.
    |{H} hid behind {his} {mom} and peeked out.
~
At last, {H} walked over. "Hello," {he} said softly. "My name is {H}. What is yours?"
    |{H} took a deep breath and walked over. "Hi! I am {H}," {he} said.
    |{H} waved a little wave. "Hello there, I am {H}," {he} said.
"I am {F}," said the {fkind} with a smile.|"My name is {F}," said the {fkind}. "I just moved here."
    |"Hi, {H}! I am {F}," said the {fkind}. "I like your {wear}."
    |The {fkind} looked up. "Oh, hello! I am {F}."
"Do you want to play with me?" asked {H}.|"Would you like to play with me, {F}?" {H} asked.
    |"Can I play with you?" asked {H}.|"Do you want to be friends?" {H} asked.
"Yes, please!" said {F}.|{F} jumped up. "I would love to!"|"Yes!" said {F} with a big grin.
    |{F} nodded so fast that {fhis} ears wiggled.
~
They {a1} and {a2}.|First they {a1}. Then they {a2}.|Together, they {a1}. After that, they {a2}.
They laughed and laughed.|They talked about their favorite colors and their favorite animals.
    |{F} showed {H} how to make a funny face, and {H} showed {F} how to hop on one foot.
    |They told silly jokes until they both fell down giggling.
~
When it was time to go home, {F} asked, "Can we play again tomorrow?" "Yes!" said {H}.
    |As the sun went down, {H} asked, "Will you come back tomorrow?" "Yes, of course!" said {F}.
    |When {his} {mom} called {him}, {H} waved. "See you tomorrow, {F}!" {he} said.
{H} and {F} became best friends.|{H} was glad {he} had said hello.
    |{H} learned that one little hello can make a new friend.
    |From that day on, {H} was never lonely again.
""")

# -- growing a seed, patiently (arc_grow) ------------------------------------------------
# seed // what it grows into // what happens at the end
SEEDS = table("""
sunflower // a tall sunflower, even taller than {H}
    // Little birds came to eat the seeds from its big yellow face.
bean // a green vine that curled up a long stick
    // Soon there were long green beans, and {H} picked them for dinner.
pumpkin // a long vine with wide green leaves
    // By autumn, there was a big orange pumpkin, round and bright.
tomato // a bushy plant with little yellow flowers
    // Soon the plant was full of red tomatoes, and {H} made a salad for the whole family.
strawberry // a little plant with white flowers
    // Then the flowers turned into sweet red strawberries, and {H} shared
        them with {his} friend {F}.
carrot // a row of feathery green leaves // {H} pulled hard, and out came a long orange carrot!
""")
GROW = script("""
~
{When}, {his} grandpa gave {H} a tiny {seed} seed.
    |{When}, {H} found a little packet of {seed} seeds in the shed.
    |{When}, {his} {mom} gave {H} a {seed} seed and a little pot.
    |{When}, a lady at the market gave {H} a {seed} seed.
{H} dug a small hole, dropped the seed in, and covered it with soil.
    |{H} pushed the seed into the soft dirt with {his} finger.
    |{H} and {his} {mom} planted the seed in a sunny spot.
Then {he} gave it some water.|{He} gave it a drink from {his} watering can.
    |"Grow, little seed, grow," {he} whispered.
~
The next day, {H} ran outside to look. Nothing was there.
    |{H} checked on the seed before breakfast, but nothing had changed.
    |The next morning, {H} checked, but there was only dirt.
    |The next day, {H} looked and looked, but {he} saw only brown dirt.
{He} watered it every day, but still nothing happened.
    |Day after day, {H} watered the seed and waited.|{H} waited one day, then two days, then three.
"When will it grow?" {H} asked.|"{Mom}, is my seed sleeping?" {H} asked.
    |"Is it ever going to grow?" {H} asked with a frown.
    |"Why is my {seed} taking so long?" {H} asked.
"Plants need time," said {his} {mom}. "You must be patient, {H}."
    |"Good things take time," said {his} {mom}. "Keep giving it water and sun."
    |"Seeds grow slowly," said {his} {mom}. "Give it a little more time."
    |"The seed is busy under the ground," said {his} {mom}. "Wait and see."
~
Then one morning, {H} saw a tiny green sprout!
    |Then one day, a little green shoot poked out of the dirt.
    |At last, two tiny green leaves peeked up at the sun.
"It's growing!" {H} shouted.|{H} clapped {his} hands and danced around.
    |{H} ran inside. "{Mom}, come and look!" {he} called.
Every day it grew bigger, until it was {grown}.
    |The sun shone and the rain fell, and the sprout grew into {grown}.
    |Week by week, it grew and grew, until it was {grown}.
{last}
~
{H} learned that good things take time.|{H} was glad {he} had been patient.
    |Now {H} plants new seeds every spring.
    |{H} liked to say, "Little seeds can grow into big things."
""")

# -- the ending --------------------------------------------------------------------------
# Some stories get one more line at the very end, as a story read aloud often does.
CLOSING = script("""
25% The end.|It was a day {H} would always remember.|{H} hoped that tomorrow would be just as good.
    |That night, {H} slept like a happy little {kind}.|What a day it had been for {H}!
    |{H} could not wait to tell {his} grandma all about it.
    |And {H} lived happily, with a smile as big as the sun.
    |Then {H} had a warm bath and went to bed.|And that is the story of {H}.
    |The stars came out, and {H} said good night to the moon.
    |{H} gave {his} {mom} a big hug before bed.|It had been a very good day.
""")
