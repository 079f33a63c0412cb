#!/usr/bin/env python3
"""bench/sass.py's parser and summary on a hand-written cuobjdump excerpt (the format of `cuobjdump -sass`:
address comment, optional predicate, opcode with modifiers, operands; the encoding on its own comment line,
which is not an instruction). Exit 1 on a mismatch."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import sass  # noqa: E402

TEXT = """
	code for sm_90a
		Function : k0_conv_pool
	.headerflags	@"EF_CUDA_TEXMODE_UNIFIED EF_CUDA_64BIT_ADDRESS EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                           /* 0x00000a00ff017b82 */
                                                                                   /* 0x000fe20000000800 */
        /*0010*/                   LDG.E.128.CONSTANT R120, desc[UR8][R2.64] ;     /* 0x0000000802787981 */
        /*0020*/              @!P0 BAR.ARV R2, 0xc0 ;                               /* 0x0000000200007b1d */
        /*0030*/                   BAR.SYNC.DEFER_BLOCKING 0x7, 0xc0 ;             /* 0x0000000700007b1d */
        /*0040*/                   HGMMA.64x112x16.F32 R24, R120, gdesc[UR4], RZ, !UPT ; /* 0x00e00004187879f0 */
        /*0050*/                   HGMMA.64x112x16.F32 R24, R80, gdesc[UR4], R24, gsb0 ; /* 0x00e00004185079f0 */
        /*0060*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;                 /* 0x00000000000079af */
        /*0070*/               @P1 STS.128 [R2+0x1d60], R36 ;                      /* 0x001d602402001388 */
        /*0080*/                   LDS R20, [R108+-0x28] ;                         /* 0xffffd8006c147984 */
        /*0090*/                   IMAD R5, R5, 0x160, R4 ;                        /* 0x0000016005057824 */
        /*00a0*/                   IMAD.WIDE.U32 R2, R5, 0x10, R2 ;                /* 0x0000001005027825 */
        /*00b0*/                   HMMA.16816.F32 R4, R8, R12, R4 ;                /* 0x0000000c0804723c */
        /*00c0*/                   EXIT ;                                          /* 0x000000000000794d */
"""

ops = sass.parse(TEXT)
want = ["LDC", "LDG.E.128.CONSTANT", "BAR.ARV", "BAR.SYNC.DEFER_BLOCKING", "HGMMA.64x112x16.F32",
        "HGMMA.64x112x16.F32", "WARPGROUP.DEPBAR.LE", "STS.128", "LDS", "IMAD", "IMAD.WIDE.U32", "HMMA.16816.F32", "EXIT"]
fails = 0
if ops != want:
    print(f"FAIL parse: {ops}\n  want {want}")
    fails += 1
line = sass.describe(ops)
for needle in ("13 instructions", "tensor cores: HGMMA.64x112x16 x2, HMMA.16816 x1", "shared memory: LDS 1, STS 1",
               "global: LDG 1", "barriers and fences: BAR 2, WARPGROUP 1", "most frequent: BAR 2, HGMMA 2, IMAD 2"):
    if needle not in line:
        print(f"FAIL describe: lacks '{needle}': {line}")
        fails += 1
print("sass_check:", "ok" if not fails else f"{fails} failure(s)")
sys.exit(1 if fails else 0)
