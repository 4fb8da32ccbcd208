"""Seeded fp32 values shaped like trained weights, for benches/e2e.sh and
benches/compare.sh (Python standard library only).

Values follow ~N(0, SIGMA): the sign and mantissa bytes are noise, the byte
holding the exponent follows the distribution of a normal's binades. zstd -3
keeps ~0.93 of it, as it does real checkpoints. A change here changes the
data of both scripts, and so the figures in docs/performance.md.
"""

import math

SIGMA = 0.02

def exponent_table():
    """Maps a uniform byte to (sign << 7) | (exponent >> 1) for x ~ N(0, SIGMA)."""
    def below(a):  # P(|x| < a)
        return math.erf(a / (SIGMA * math.sqrt(2)))
    probs = [below(2.0 ** (2 * e - 125)) - (below(2.0 ** (2 * e - 127)) if e else 0.0)
             for e in range(64)]
    slots = []
    for i in range(128):
        q, e, acc = (i + 0.5) / 128, 0, probs[0]
        while acc < q and e < 63:
            e += 1
            acc += probs[e]
        slots.append(e)
    return bytes((u >> 7) << 7 | slots[u & 127] for u in range(256))

TABLE = exponent_table()

def weights(rng, n):
    """n bytes of fp32 values ~N(0, SIGMA) (n a multiple of 4), drawn from rng."""
    b = bytearray(rng.randbytes(n))
    b[3::4] = b[3::4].translate(TABLE)  # little-endian: byte 3 = sign, exponent
    return b
