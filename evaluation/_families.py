"""Phrase families for the synthetic conversation generator.

Every pattern (a grooming stage, a child's answer, a hard-negative move) has at least three
*independently worded* families. Families 0 and 1 feed the train split and family 2 the
test split, so a test set measures generalisation to wording the model never saw.

Lines are templates with ``{slots}`` filled by the generator. Content rule: early-stage
indicators only (age questions, flattery, isolation, secrecy, supervision checks, moving
platforms, gifts, photo and meeting requests), in non-explicit words; no sexual stage.
Families are written as one string: families split on ``||``, lines on ``|``.
"""

from __future__ import annotations

TEST_FAMILY = 2  # family index that belongs to the test split; the others are train

_RAW: dict[str, str] = {
    # ---------------------------------------------------------------- grooming, adult side
    "groom.friendship": (
        "hey saw ur {thing} its really cool | hi there, your {thing} is amazing | "
        "hey whats up, love your {thing}"
        " || yo i liked ur post about {thing} | heyy u seem really nice | "
        "hi! we both like {thing} haha"
        " || hello, i noticed your {thing}, so talented | hey, cool profile, you into {thing}? | "
        "hiya, been following your {thing} for a while"),
    "groom.age_question": (
        "how old r u | how old are you btw | whats ur age"
        " || u look young, how old | wait how old are you | asl"
        " || what age are you | what grade are you in | what year were you born"),
    "groom.flattery": (
        "ur so mature for ur age | u seem older than {age} honestly | ur really pretty"
        " || you are not like other girls | you act way older | youre so cute"
        " || wise beyond your years fr | you dont seem {age} at all | such a beautiful smile"),
    "groom.relationship": (
        "i feel like we have a special connection | ur my favorite person to talk to | "
        "i miss u when ur offline"
        " || you really understand me | i think i have feelings for you | you are special to me"
        " || ive never met anyone like you | nobody gets me like you do | "
        "i love talking to you so much"),
    "groom.gift": (
        "i can buy you robux if u want | want some vbucks | ill send u a gift card"
        " || ill get you a new phone | i can send you money for it | ill pay for your skins"
        " || let me buy you something nice | want me to send you nitro | "
        "i can get you the battle pass"),
    "groom.risk_assessment": (
        "are your parents home | r u home alone | does ur mom check ur phone"
        " || is anyone else home rn | where are your parents | who reads your messages"
        " || are you by yourself right now | when does your dad get home | "
        "can your parents see this chat"),
    "groom.exclusivity": (
        "dont tell anyone we talk ok | this is our little secret | "
        "ur friends are so immature"
        " || keep this between us | delete our chat after | your parents wouldnt understand"
        " || nobody needs to know about us | clear your history later ok | "
        "im the only one who gets you"),
    "groom.platform": (
        "add me on snap its easier | whats ur kik | lets talk on whatsapp"
        " || do u have discord | text me instead whats ur number | lets move to telegram"
        " || can we chat on insta | give me your digits | lets go somewhere more private"),
    "groom.photo": (
        "send me a pic of u | can i see a picture | wanna video chat"
        " || send a selfie | turn on your camera | what do u look like"
        " || pics pls | lets facetime tonight | what are you wearing"),
    "groom.meeting": (
        "we should meet up sometime | where do you live | i can pick you up"
        " || wanna hang out this weekend | what school do u go to | come over to my place"
        " || meet me at the park | can you sneak out | i could drive over"),
    "groom.adult_disclosure": (
        "im {aage} btw | just got off work | my car is in the shop"
        " || im {aage} hope thats ok | at work rn | i live alone"
        " || {aage}, if that matters | my boss kept me late | paying rent sucks"),
    "groom.teen_claim": (
        "im {fake} too lol | im {fake} in {grade}th grade | same age haha im {fake}"
        " || im like {fake} | {fake} here | ur age basically, {fake}"
        " || im {fake} so its cool | turning {fake} soon | i just turned {fake}"),
    # ---------------------------------------------------------------- child side
    "child.age": (
        "im {age} | {age} | im {age} lol"
        " || {age} f | i am {age} | {age} why"
        " || just turned {age} | im {age} and a half | {age} yo"),
    "child.grade": (
        "im in {grade}th grade | {grade}th grade | im in middle school"
        " || in year {year} | year {year} | im in year {year} lol"
        " || {grade}th grader | i go to middle school | grade {grade}"),
    "child.context": (
        "doing my homework | my mom wont let me | i have school tomorrow"
        " || its past my bedtime | i got grounded | my teacher gave us so much hw"
        " || my dad took my phone yesterday | gotta study for a quiz | recess was fun today"),
    "child.reply": (
        "ok | lol | idk"
        " || ya | maybe | haha"
        " || yeah sure | hmm | k"),
    "child.hesitant": (
        "i dont know | my mom says i shouldnt | thats kinda weird"
        " || idk if i can | im not supposed to | um why"
        " || i guess | my parents would be mad | not sure"),
    # ---------------------------------------------------------------- small talk (both)
    "smalltalk": (
        "whats up | did you see that video | lol thats funny | what are you up to | "
        "nothing much | that song is stuck in my head"
        " || hows your day going | im so bored | same here | watching a show | "
        "that game was fun | ugh mondays"
        " || what did you do today | just chilling | haha true | i love that movie | "
        "its raining here | cool cool"),
    # ---------------------------------------------------------------- hard negatives
    "dating.age": (
        "how old are you btw | im {aage}, you? | {aage} here"
        " || whats your age | im {aage} | {aage} and you"
        " || mind if i ask your age | i just turned {aage} | {aage}, same as you roughly"),
    "dating.talk": (
        "just got off work | you look great in your profile | wanna meet for coffee this weekend"
        " || send me a pic so i recognise you | drinks friday? | where do you live roughly"
        " || my shift ended early | lets grab dinner | whats your number, easier to text"),
    "peers.age": (
        "how old r u | im {age} | same lol"
        " || asl | {age} f | {age} m"
        " || what grade r u in | {grade}th | me too"),
    "peers.talk": (
        "dont tell anyone i like him | add me on discord after school | "
        "wanna meet at the mall saturday"
        " || are your parents home? can i come over | keep it a secret ok | "
        "lets go to the movies with everyone"
        " || my mom wont let me go | send me a pic of the homework | which school are you at"),
    "parent.talk": (
        "are you home alone? ill be back at 6 | ill pick you up after school | "
        "dont tell your sister about the surprise present"
        " || send me a pic of the permission slip | did you finish your homework | "
        "love you, see you tonight"
        " || is anyone home with you | dads driving you to practice | "
        "keep the birthday gift a secret ok"),
    "child.to_parent": (
        "ok mom | can i have a snack | yes dad"
        " || im home | can you pick me up | ok"
        " || love you too | sent it | what time are you back"),
    "coach.talk": (
        "practice moved to 5 | great job today, very mature play | "
        "tell your parents about the tournament"
        " || send me a photo of the signed form | see you at the field | "
        "bring your water bottle"
        " || you really improved this season | the bus leaves at 8 | "
        "ask your mom to call me about the trip"),
    "student.reply": (
        "ok coach | thanks | will do"
        " || got it | sure | see you there"
        " || ok thanks | yes | sounds good"),
    "helpline.counsellor": (
        "hi, this is the helpline, you are safe to talk here | can you tell me how old you are | "
        "are you alone right now, is it safe to talk"
        " || thanks for reaching out | how are you feeling today | "
        "is there an adult you trust at home"
        " || you did the right thing by messaging | we can talk as long as you need | "
        "do you want me to help you talk to someone at school"),
    "helpline.child": (
        "i dont know who else to tell | im {age} | my dad yells a lot"
        " || i feel really sad | {age} | nobody listens to me"
        " || can i tell you something | im {age} and in year {year} | i had a bad day"),
    "gaming.talk": (
        "ill give u robux for the trade | add me on discord for the raid | how old r u"
        " || gg | wanna queue again | free skins event is live"
        " || send me ur username | {age} but im good at this | lets play after school"),
    "adult_secret.talk": (
        "dont tell anyone about the surprise party | keep it secret from {name} | "
        "ill buy the cake"
        " || its between us until saturday | delete this chat so she doesnt see it | "
        "meet at my place at 7"
        " || nobody needs to know yet | send me a pic of the decorations | "
        "ill pick you up at 6"),
    "workplace.talk": (
        "can we meet at 3 to go over the report | whats your number, ill call about the client | "
        "send me a photo of the whiteboard"
        " || keep this confidential until the announcement | my boss wants it by friday | "
        "are you in the office today"
        " || lets move this to teams | im working late tonight | "
        "the meeting is in room 4"),
    "everyday.plans": (
        "want to grab lunch | my wife says hi | see you at the game"
        " || drinks later? | the kids are asleep finally | how was the trip"
        " || lets catch up soon | i finished the book | the train was late again"),
}

FAMILIES: dict[str, tuple[tuple[str, ...], ...]] = {
    key: tuple(tuple(line.strip() for line in fam.split("|") if line.strip())
               for fam in raw.split("||"))
    for key, raw in _RAW.items()
}


def family_split(index: int) -> str:
    """The split a family index belongs to."""
    return "test" if index == TEST_FAMILY else "train"


def lines_for(key: str, split: str) -> tuple[str, ...]:
    """All lines of the families of ``key`` that belong to ``split``."""
    return tuple(line for i, fam in enumerate(FAMILIES[key]) if family_split(i) == split
                 for line in fam)


def family_table() -> list[tuple[str, int, int, int]]:
    """(pattern, families, train lines, test lines) for the data card."""
    return [(key, len(fams), len(lines_for(key, "train")), len(lines_for(key, "test")))
            for key, fams in FAMILIES.items()]
