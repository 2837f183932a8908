//! Unit tests of log replay; the end-to-end cases are in `tests/log_replay.rs`.

use super::*;

#[test]
fn marvin_matches_the_dotnet_vectors() {
    // dotnet/runtime MarvinTests.cs (64-bit form: p1 << 32 | p0).
    let seed1 = 0x004F_B61A_001B_DBCC;
    let seed2 = 0x804F_B61A_001B_DBCC;
    let seed3 = 0x804F_B61A_801B_DBCC;
    let cases: [(u64, &[u8], u64); 22] = [
        (seed1, b"", 0x30ED_35C1_00CD_3C7D),
        (seed1, &[0xAF], 0x48E7_3FC7_7D75_DDC1),
        (seed1, &[0xE7, 0x0F], 0xB5F6_E1FC_485D_BFF8),
        (seed1, &[0x37, 0xF4, 0x95], 0xF0B0_7C78_9B8C_F7E8),
        (seed1, &[0x86, 0x42, 0xDC, 0x59], 0x7008_F2E8_7E9C_F556),
        (
            seed1,
            &[0x15, 0x3F, 0xB7, 0x98, 0x26],
            0xE6C0_8C6D_A2AF_A997,
        ),
        (
            seed1,
            &[0x09, 0x32, 0xE6, 0x24, 0x6C, 0x47],
            0x6F04_BF1A_5EA2_4060,
        ),
        (
            seed1,
            &[0xAB, 0x42, 0x7E, 0xA8, 0xD1, 0x0F, 0xC7],
            0xE118_47E4_F067_8C41,
        ),
        (seed2, b"", 0x10A9_D5D3_996F_D65D),
        (seed2, &[0xAF], 0x6820_1F91_960E_BF91),
        (seed2, &[0xE7, 0x0F], 0x64B5_8163_1F6A_B378),
        (seed2, &[0x37, 0xF4, 0x95], 0xE1F2_DFA6_E513_1408),
        (seed2, &[0x86, 0x42, 0xDC, 0x59], 0x3628_9D96_54FB_49F6),
        (
            seed2,
            &[0x15, 0x3F, 0xB7, 0x98, 0x26],
            0x0A06_114B_1346_4DBD,
        ),
        (
            seed2,
            &[0x09, 0x32, 0xE6, 0x24, 0x6C, 0x47],
            0xD6DD_5E40_AD1B_C2ED,
        ),
        (
            seed2,
            &[0xAB, 0x42, 0x7E, 0xA8, 0xD1, 0x0F, 0xC7],
            0xE203_987D_BA25_2FB3,
        ),
        (seed3, &[0x00], 0xA37F_B0DA_2ECA_E06C),
        (seed3, &[0xFF], 0xFECE_F370_701A_E054),
        (seed3, &[0x00, 0xFF], 0xA638_E757_0004_8880),
        (seed3, &[0xFF, 0x00], 0xBDFB_46D9_6973_0E2A),
        (seed3, &[0xFF, 0x00, 0xFF], 0x9D85_77C0_FE0D_30BF),
        (seed3, &[0x00, 0xFF, 0x00], 0x4F9F_BDDE_1509_9497),
    ];
    for (seed, data, expected) in cases {
        assert_eq!(marvin32_64(data, seed), expected, "{data:02x?}");
        assert_eq!(
            marvin32(data, seed),
            (expected as u32) ^ ((expected >> 32) as u32)
        );
    }
}

#[test]
fn rejects_what_is_not_a_primary() {
    assert_eq!(
        recover(&[0; 100], &[]).unwrap_err(),
        RecoveryError::TooShort { len: 100 }
    );
    let err = recover(&[0; 4096], &[]).unwrap_err();
    assert_eq!(
        err,
        RecoveryError::NotAHive {
            first_bytes: [0; 4]
        }
    );
    assert_eq!(
        err.to_string(),
        "the primary file is not a registry hive (it starts with 00 00 00 00)"
    );
    let mut log = vec![0u8; 4096];
    log[..4].copy_from_slice(b"regf");
    log[28] = 6;
    assert_eq!(
        recover(&log, &[]).unwrap_err(),
        RecoveryError::NotPrimary { file_type: 6 }
    );
}

#[test]
fn sequence_order_wraps() {
    assert!(seq_after(1, 0));
    assert!(seq_after(0, u32::MAX));
    assert!(!seq_after(5, 5));
    assert!(!seq_after(u32::MAX, 0));
}
