"""Validation texts written for bertserve: real sentences of varied length, some long.

Used to compare each ONNX variant with PyTorch. Written for the project, not taken from any
data set. Entities in the NER sentences are mostly real places and organisations so a trained
tagger has something to find; people are invented.
"""

from __future__ import annotations

SENTENCES: tuple[str, ...] = (
    "Great service.",
    "The soup was cold.",
    "I would not recommend this hotel to anyone.",
    "Delivery took three weeks and the box arrived crushed.",
    "Honestly the best pair of running shoes I have owned in years.",
    "The update broke the app again; it now crashes every time I open the camera.",
    "Staff were friendly, the room was spotless, and breakfast was better than expected.",
    "Meh.",
    "It works, I guess, but the battery barely lasts until lunchtime.",
    "What a pleasant surprise: the sequel is funnier and sharper than the original film.",
    "The instructions were written in three languages and were unclear in all of them.",
    "Customer support answered within five minutes and fixed the billing mistake on the spot.",
    "I returned the blender after it started smoking during the second use.",
    "Five stars for the view, one star for the noise from the bar downstairs.",
    "The lecture was too long, but the examples at the end made everything click.",
    "Nothing special, nothing terrible, just an average sandwich at an above average price.",
    "Our flight was delayed by six hours and nobody at the gate could tell us why.",
    "This keyboard feels solid, the keys are quiet, and the backlight is not too bright.",
    "The plot holes in the final season were big enough to drive a truck through.",
    "My grandmother loved the audiobook and asked for the rest of the series.",
    "Terrible!!! Never again.",
    "The museum's new wing is beautifully lit, and the guided tour is worth every penny.",
    "I expected more from a restaurant with such a long waiting list.",
    "The package was left in the rain, so the book inside was soaked and the pages stuck together.",
    "Setup took less than ten minutes, including pairing the speaker with my old laptop.",
    "The hiking trail was poorly marked, we got lost twice, and the promised waterfall had dried up.",
    "A calm, thoughtful novel about a family that slowly learns to talk to each other again.",
    "Price went up, portions went down, and the coffee still tastes burnt.",
    (
        "I bought this vacuum cleaner after reading dozens of reviews, and for the first month it "
        "was everything they promised: quiet, light, and strong enough to pull dog hair out of the "
        "carpet. Then the brush roll started to squeal, the charging dock stopped making contact "
        "unless I wedged a folded envelope behind it, and the app decided my living room was a "
        "hallway. Support offered a replacement part, which helped for a week. I want to like it, "
        "but right now I cannot recommend it to anyone who does not enjoy repairing things."
    ),
    (
        "We stayed four nights at the guesthouse at the end of the valley road. The owners met us "
        "at the bus stop, carried our bags up the hill, and every morning laid out bread still warm "
        "from the oven, local cheese, fruit from their own trees and strong coffee. The rooms are "
        "simple but very clean, the beds are comfortable, and the terrace looks straight down the "
        "valley toward the lake. In the evenings they recommended small restaurants that we would "
        "never have found alone. If you want quiet, kindness and good food, this is the place."
    ),
    (
        "The conference had a promising programme, but the organisation let it down. Registration "
        "queues stretched around the building on the first morning, two of the rooms had no working "
        "projector, and the schedule on the website disagreed with the printed booklet for most of "
        "the second day. The talks themselves were mostly excellent, especially the panel on energy "
        "storage and the keynote about public transport in growing cities, yet by the last afternoon "
        "half of the attendees had given up and gone home early."
    ),
    "Not bad at all.",
    "The zipper broke on the first day of the trip.",
    "Surprisingly good value for a pair of headphones that cost less than a cinema ticket.",
)

PAIRS: tuple[tuple[str, str], ...] = (
    ("A man is playing a guitar on a stage.", "A musician is performing."),
    ("A man is playing a guitar on a stage.", "The stage is empty."),
    ("Two children are building a sandcastle on the beach.", "Kids are playing outside."),
    ("Two children are building a sandcastle on the beach.", "The children are asleep in bed."),
    ("The shop closes at six on weekdays.", "The shop is open late on Mondays."),
    ("She finished the marathon in under four hours.", "She ran a long race."),
    ("The train was cancelled because of the storm.", "Bad weather disrupted rail travel."),
    ("The train was cancelled because of the storm.", "The train left on time."),
    ("A woman is slicing tomatoes in a kitchen.", "Someone is preparing food."),
    ("A woman is slicing tomatoes in a kitchen.", "A woman is cooking dinner for her family."),
    ("The committee approved the budget after a long debate.", "The budget was rejected."),
    ("The committee approved the budget after a long debate.", "There was a discussion about money."),
    ("The dog is chasing a red ball across the park.", "An animal is running."),
    ("The dog is chasing a red ball across the park.", "The cat is sleeping on the sofa."),
    ("He forgot his umbrella and got soaked on the way home.", "It was raining."),
    ("The library will be closed for renovation until March.", "You can borrow books there in February."),
    ("Prices rose by two percent last year.", "Inflation was low but positive."),
    ("Nobody came to the meeting.", "The meeting room was full."),
    ("The bridge was built in 1890 and repaired in 1950.", "The bridge is more than a century old."),
    ("A group of friends is having a picnic under a tree.", "People are eating outdoors."),
    (
        "After months of negotiation, the two companies agreed to merge their research divisions, "
        "keep both brands on the market, and move the combined headquarters to the northern office, "
        "which has more space and better rail connections.",
        "The companies will combine part of their operations.",
    ),
    (
        "The new timetable adds an early morning bus on weekdays, removes the last service on Sunday "
        "evenings, and shifts most afternoon departures by ten minutes to match the train arrivals.",
        "There are fewer buses late on Sundays.",
    ),
    (
        "The recipe calls for two cups of flour, one egg, a pinch of salt and enough milk to make a "
        "smooth batter, which should rest for half an hour before cooking.",
        "The batter must be cooked immediately.",
    ),
    ("Fine.", "Everything is all right."),
)

QA: tuple[tuple[str, str], ...] = (
    (
        "When was the bridge finished?",
        "Construction of the stone bridge began in 1883 and it was finished in 1889, two years late "
        "because of a flood that washed away the scaffolding.",
    ),
    (
        "What washed away the scaffolding?",
        "Construction of the stone bridge began in 1883 and it was finished in 1889, two years late "
        "because of a flood that washed away the scaffolding.",
    ),
    (
        "Who founded the bakery?",
        "The bakery on Mill Street was founded by Ada Kowalski, who arrived in the town with a "
        "sourdough starter her grandmother had kept alive for forty years.",
    ),
    (
        "How old was the sourdough starter?",
        "The bakery on Mill Street was founded by Ada Kowalski, who arrived in the town with a "
        "sourdough starter her grandmother had kept alive for forty years.",
    ),
    ("What colour is the front door?", "The cottage has a green front door and a red tiled roof."),
    ("How many moons does Mars have?", "Mars has two small moons, Phobos and Deimos."),
    (
        "Which language is spoken at home?",
        "Although the family moved to Lisbon when the children were small, they still speak Dutch at "
        "home and English at work.",
    ),
    (
        "What does the device measure?",
        "The handheld device measures soil moisture at three depths and sends the readings to a phone "
        "over a low-power radio link.",
    ),
    (
        "How long does the battery last?",
        "According to the manufacturer, the battery lasts about eighteen months with one reading per "
        "hour, or roughly a year if readings are taken every fifteen minutes.",
    ),
    (
        "Where is the observatory?",
        "The observatory sits on a ridge above the village of Castell, far enough from the coast to "
        "escape the sea fog that often covers the lower valley in autumn.",
    ),
    (
        "Why was the match postponed?",
        "The final was postponed by a week after heavy snow made the pitch unplayable and closed the "
        "main road to the stadium.",
    ),
    (
        "What did the committee decide?",
        "After a two-hour meeting, the committee decided to keep the pool open through the winter and "
        "to raise the price of a season ticket by five euros.",
    ),
    ("Who wrote the letter?", "The letter was written by the captain's sister and posted from Oslo."),
    (
        "What is the maximum speed of the ferry?",
        "The new electric ferry carries up to two hundred passengers and forty cars. It charges at "
        "each end of the crossing while vehicles are loaded, and its maximum speed is twelve knots, "
        "slightly slower than the diesel ship it replaces, but the crossing takes the same twenty "
        "minutes because loading is quicker.",
    ),
    (
        "How many passengers can the ferry carry?",
        "The new electric ferry carries up to two hundred passengers and forty cars. It charges at "
        "each end of the crossing while vehicles are loaded, and its maximum speed is twelve knots, "
        "slightly slower than the diesel ship it replaces, but the crossing takes the same twenty "
        "minutes because loading is quicker.",
    ),
    (
        "What replaced the wooden floor?",
        "When the school hall was renovated, the old wooden floor was replaced with cork tiles, the "
        "windows were enlarged, and a small stage was added at the north end for concerts and plays.",
    ),
    (
        "Which river flows through the town?",
        "The town grew up around a ford on the river Alder. For centuries the ford was the only "
        "crossing for twenty miles in either direction, so merchants, soldiers and pilgrims all passed "
        "through, and inns lined both banks. The first bridge was not built until the railway arrived "
        "in 1851, and the engineers placed it a little upstream, where the banks are firmer. Today the "
        "old ford is marked only by a stone on the eastern bank and a street called Ford Lane, while "
        "the inns have become shops, offices and, in one case, a small museum of local history that "
        "opens on Saturday afternoons from April to October.",
    ),
    (
        "When does the museum open?",
        "The town grew up around a ford on the river Alder. For centuries the ford was the only "
        "crossing for twenty miles in either direction, so merchants, soldiers and pilgrims all passed "
        "through, and inns lined both banks. The first bridge was not built until the railway arrived "
        "in 1851, and the engineers placed it a little upstream, where the banks are firmer. Today the "
        "old ford is marked only by a stone on the eastern bank and a street called Ford Lane, while "
        "the inns have become shops, offices and, in one case, a small museum of local history that "
        "opens on Saturday afternoons from April to October.",
    ),
    ("What is the capital?", "The capital, Valdor, lies on the northern shore."),
    (
        "What ingredient is added last?",
        "Melt the butter, stir in the sugar until it dissolves, beat in the eggs one at a time, fold "
        "in the flour, and only at the very end add the lemon zest so that it keeps its scent.",
    ),
)

NER: tuple[str, ...] = (
    "Maria Lindqvist joined Siemens in Munich last spring.",
    "The European Space Agency launched the probe from French Guiana.",
    "Tom Okafor flew from Lagos to Toronto for the conference.",
    "Apple opened a new office in Dublin.",
    "The Red Cross sent volunteers to the flooded villages along the Danube.",
    "Yesterday it rained.",
    "Professor Helen Marsh of the University of Edinburgh won the award.",
    "Toyota and Panasonic will build a battery plant near Osaka.",
    "The United Nations held talks in Geneva on Tuesday.",
    "Carlos Mendes scored twice as Benfica beat Porto in Lisbon.",
    "Greenpeace protested outside the headquarters of Shell in The Hague.",
    "The Amazon river crosses Peru, Colombia and Brazil.",
    "Sara Nilsen, a nurse from Bergen, now works for Doctors Without Borders in Sudan.",
    "Microsoft bought a small startup based in Tel Aviv.",
    "The concert at Carnegie Hall was cancelled.",
    "Pierre Dubois and Anna Weber met at the Frankfurt Book Fair.",
    "NASA says the rover will land in Jezero Crater.",
    "The World Bank approved a loan to Kenya for new railway lines.",
    "I met Jonas at the station.",
    "The Louvre in Paris welcomed more visitors than any other museum last year.",
    (
        "On Monday, representatives of the European Commission, the German finance ministry and the "
        "International Monetary Fund met in Brussels with the Greek delegation led by Nikos Papadakis "
        "to discuss the next stage of the programme, while protesters gathered outside the Berlaymont "
        "building and police closed several streets around Schuman station."
    ),
    (
        "Born in Krakow, Ewa Zielinska studied chemistry at Oxford, worked for BASF in Ludwigshafen "
        "and for Novartis in Basel, and in 2019 founded a company in Copenhagen that recycles "
        "lithium from old phone batteries with help from the Danish Technical University."
    ),
    "FIFA fined the club after the match in Buenos Aires.",
    "The Nile flows north into the Mediterranean.",
)
