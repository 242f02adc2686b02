use super::*;
use crate::offload::packet::{TCP_ACK, TCP_CWR, TCP_FIN, TCP_PSH};
use crate::offload::testutil::{reference_checksum, tcp_fields, verifies, TcpBuilder};
use proptest::prelude::*;

const STRIDE: usize = 1500;

fn out_buffer() -> Vec<u8> {
    vec![0u8; (MAX_SUPER_PACKET / 64 + 1) * STRIDE * 2]
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Segments and checks everything a receiver would: both checksums and the
/// length fields, contiguous sequence numbers, the payload reassembled, and
/// where FIN/PSH/CWR and the IPv4 IDs ended up.
fn check_segmentation(builder: &TcpBuilder, gso_size: u16) -> Vec<Vec<u8>> {
    let (hdr, packet) = builder.super_packet(gso_size);
    let expected = builder.payload.len().div_ceil(usize::from(gso_size)).max(1);
    // Room for every segment, however small `gso_size` is.
    let mut out = vec![0u8; expected * STRIDE];
    let segments = segment(&hdr, &packet, &mut out, STRIDE).unwrap();
    assert_eq!(segments.len(), expected);
    let packets: Vec<Vec<u8>> = segments.ranges().map(|r| out[r].to_vec()).collect();
    let mut payload = Vec::new();
    for (i, seg) in packets.iter().enumerate() {
        assert!(verifies(seg), "segment {i} does not verify");
        let (seq, flags, piece) = tcp_fields(seg);
        assert_eq!(seq, builder.seq.wrapping_add(payload.len() as u32));
        let last = i + 1 == packets.len();
        if !last {
            assert_eq!(piece.len(), usize::from(gso_size));
            assert_eq!(seg.len(), segments.full_len());
        }
        assert_eq!(
            flags & (TCP_FIN | TCP_PSH),
            if last {
                builder.flags & (TCP_FIN | TCP_PSH)
            } else {
                0
            }
        );
        assert_eq!(
            flags & TCP_CWR,
            if i == 0 { builder.flags & TCP_CWR } else { 0 }
        );
        assert_eq!(flags & TCP_ACK, builder.flags & TCP_ACK);
        if !builder.v6 {
            assert_eq!(
                u16::from_be_bytes([seg[4], seg[5]]),
                builder.id.wrapping_add(i as u16)
            );
        }
        // Everything else in the headers is the super-packet's.
        let ip_len = builder.ip_len();
        let skip = |j: usize| {
            (!builder.v6 && matches!(j, 2..=5 | 10 | 11))
                || (builder.v6 && matches!(j, 4 | 5))
                || (j >= ip_len && matches!(j - ip_len, 4..=7 | 13 | 16 | 17))
        };
        for j in (0..builder.headers_len()).filter(|j| !skip(*j)) {
            assert_eq!(seg[j], packet[j], "header byte {j} of segment {i}");
        }
        payload.extend_from_slice(piece);
    }
    assert_eq!(payload, builder.payload);
    packets
}

#[test]
fn a_64k_ipv4_super_packet_at_mss_1380() {
    let builder = TcpBuilder::v4()
        .tcp_options(12)
        .payload(pattern(MAX_SUPER_PACKET - 52))
        .flags(TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR);
    let (hdr, packet) = builder.super_packet(1380);
    assert_eq!(packet.len(), MAX_SUPER_PACKET);
    let packets = check_segmentation(&builder, 1380);
    assert_eq!(packets.len(), 48);
    assert!(packets[..47].iter().all(|p| p.len() == 52 + 1380));
    assert_eq!(packets[47].len(), 52 + (MAX_SUPER_PACKET - 52 - 47 * 1380));
    let mut out = out_buffer();
    let segments = segment(&hdr, &packet, &mut out, STRIDE).unwrap();
    assert_eq!((segments.full_len(), segments.stride()), (1432, STRIDE));
    assert_eq!(
        segments.range(47),
        Some(47 * STRIDE..47 * STRIDE + segments.last_len())
    );
    assert_eq!(segments.range(48), None);
}

#[test]
fn an_ipv6_super_packet_with_options_and_a_wrapping_sequence() {
    let mut builder = TcpBuilder::v6()
        .tcp_options(12)
        .payload(pattern(60_000))
        .flags(TCP_ACK | TCP_PSH);
    builder.seq = u32::MAX - 5000;
    let packets = check_segmentation(&builder, 1428);
    assert_eq!(packets.len(), 43);
}

#[test]
fn ipv4_options_are_copied_and_the_id_wraps() {
    let mut builder = TcpBuilder::v4().ip_options(8).payload(pattern(5000));
    builder.id = u16::MAX - 1;
    check_segmentation(&builder, 1000);
}

#[test]
fn a_payload_no_longer_than_gso_size_is_one_segment() {
    check_segmentation(&TcpBuilder::v4().payload(pattern(1380)), 1380);
    check_segmentation(&TcpBuilder::v4().payload(pattern(10)), 1380);
    check_segmentation(&TcpBuilder::v6().flags(TCP_ACK | TCP_FIN), 1380);
}

#[test]
fn a_segment_of_exactly_the_stride_fits() {
    let builder = TcpBuilder::v4().payload(pattern(2920));
    let (hdr, packet) = builder.super_packet(1460);
    let mut out = vec![0u8; 1500 + 1500];
    assert_eq!(segment(&hdr, &packet, &mut out, 1500).unwrap().len(), 2);
    assert_eq!(
        segment(&hdr, &packet, &mut out[..2999], 1500),
        Err(OffloadError::OutputTooSmall {
            needed: 3000,
            available: 2999
        })
    );
    assert_eq!(
        segment(&hdr, &packet, &mut out, 1499),
        Err(OffloadError::StrideTooSmall {
            segment_len: 1500,
            stride: 1499
        })
    );
}

#[test]
fn hdr_len_may_exceed_the_headers_but_not_undercut_them() {
    let builder = TcpBuilder::v4().payload(pattern(3000));
    let (mut hdr, packet) = builder.super_packet(1000);
    let mut out = out_buffer();
    // The kernel reports skb_headlen on a forwarding path.
    hdr.hdr_len = 1040;
    assert_eq!(segment(&hdr, &packet, &mut out, STRIDE).unwrap().len(), 3);
    hdr.hdr_len = 39;
    assert_eq!(
        segment(&hdr, &packet, &mut out, STRIDE),
        Err(Malformed::HdrLen {
            hdr_len: 39,
            headers: 40,
            packet: 3040
        }
        .into())
    );
    hdr.hdr_len = 3041;
    assert!(matches!(
        segment(&hdr, &packet, &mut out, STRIDE),
        Err(OffloadError::Malformed(Malformed::HdrLen { .. }))
    ));
}

#[test]
fn refuses_what_it_must() {
    let builder = TcpBuilder::v4().payload(pattern(3000));
    let (hdr, packet) = builder.super_packet(1000);
    let mut out = out_buffer();
    let mut run = |hdr: VnetHdr, packet: &[u8]| segment(&hdr, packet, &mut out, STRIDE);

    assert_eq!(
        run(VnetHdr { gso_size: 0, ..hdr }, &packet),
        Err(Malformed::GsoSizeZero.into())
    );
    assert_eq!(
        run(
            VnetHdr {
                gso_type: VnetHdr::GSO_UDP,
                ..hdr
            },
            &packet
        ),
        Err(Unsupported::UdpGso.into())
    );
    assert_eq!(
        run(
            VnetHdr {
                gso_type: VnetHdr::GSO_UDP_L4,
                ..hdr
            },
            &packet
        ),
        Err(Unsupported::UdpGso.into())
    );
    assert_eq!(
        run(VnetHdr { gso_type: 2, ..hdr }, &packet),
        Err(Unsupported::GsoType(2).into())
    );
    assert_eq!(
        run(
            VnetHdr {
                gso_type: VnetHdr::GSO_ECN,
                ..hdr
            },
            &packet
        ),
        Err(Unsupported::GsoType(0x80).into())
    );
    assert_eq!(
        run(
            VnetHdr {
                gso_type: VnetHdr::GSO_TCPV6,
                ..hdr
            },
            &packet
        ),
        Err(Malformed::GsoTypeMismatch.into())
    );
    assert_eq!(
        run(
            VnetHdr {
                csum_offset: 6,
                ..hdr
            },
            &packet
        ),
        Err(Malformed::ChecksumOffsets {
            start: 20,
            offset: 6
        }
        .into())
    );
    let mut udp = packet.clone();
    udp[9] = 17;
    assert_eq!(run(hdr, &udp), Err(Malformed::NotTcp(17).into()));

    let (hdr6, mut packet6) = TcpBuilder::v6().payload(pattern(3000)).super_packet(1000);
    packet6[6] = 43;
    assert_eq!(
        run(hdr6, &packet6),
        Err(Unsupported::Ipv6ExtensionHeader(43).into())
    );

    // ECN-flagged TSO is accepted (CWR stays on the first segment).
    assert!(run(
        VnetHdr {
            gso_type: VnetHdr::GSO_TCPV4 | VnetHdr::GSO_ECN,
            ..hdr
        },
        &packet
    )
    .is_ok());
    // Without NEEDS_CSUM the offsets are not consulted; checksums are recomputed anyway.
    assert!(run(
        VnetHdr {
            flags: 0,
            csum_start: 0,
            csum_offset: 0,
            ..hdr
        },
        &packet
    )
    .is_ok());
}

#[test]
fn every_truncation_of_a_super_packet_is_refused_or_yields_verifiable_segments() {
    let builder = TcpBuilder::v6().tcp_options(8).payload(pattern(200));
    let (hdr, packet) = builder.super_packet(64);
    let mut out = out_buffer();
    for len in 0..packet.len() {
        let hdr = VnetHdr {
            hdr_len: hdr.hdr_len.min(len as u16),
            ..hdr
        };
        match segment(&hdr, &packet[..len], &mut out, STRIDE) {
            Ok(segments) => {
                assert!(len >= builder.headers_len(), "accepted {len} bytes");
                assert!(segments.ranges().all(|r| verifies(&out[r])));
            }
            Err(_) => assert!(len < builder.headers_len(), "refused {len} bytes"),
        }
    }
}

#[test]
fn needs_csum_completion_matches_a_full_recompute() {
    // TCP: the kernel leaves the folded pseudo-header sum in the field.
    for builder in [
        TcpBuilder::v4().payload(pattern(777)),
        TcpBuilder::v6().tcp_options(4).payload(pattern(1001)),
    ] {
        let correct = builder.build();
        let (mut hdr, partial) = builder.super_packet(0);
        hdr.gso_type = VnetHdr::GSO_NONE;
        hdr.gso_size = 0;
        assert_ne!(partial, correct);
        let mut out = out_buffer();
        let segments = segment(&hdr, &partial, &mut out, STRIDE).unwrap();
        assert_eq!(segments.len(), 1);
        assert_eq!(&out[segments.range(0).unwrap()], &correct[..]);
    }
}

#[test]
fn needs_csum_completion_on_arbitrary_offsets_and_the_zero_rule() {
    // An odd start, a field in the middle: final = complement of the sum from
    // csum_start with the field as it was.
    let mut packet = pattern(301);
    let hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        csum_start: 33,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    let expected = reference_checksum(&packet[33..], 0);
    let partial = u16::from_be_bytes([packet[39], packet[40]]);
    complete_checksum(&hdr, &mut packet).unwrap();
    assert_eq!(u16::from_be_bytes([packet[39], packet[40]]), expected);
    // What the field held (the pseudo-header sum) plus the bytes now verifies.
    assert_eq!(reference_checksum(&packet[33..], u32::from(partial)), 0);

    // A sum that complements to 0 is written as 0xffff (UDP's "no checksum" is 0).
    let mut zero = vec![0u8; 8];
    zero[0] = 0xff;
    zero[1] = 0xff;
    let hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        csum_start: 0,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    complete_checksum(&hdr, &mut zero).unwrap();
    assert_eq!(zero[6..8], [0xff, 0xff]);

    // Offsets past the end are refused and the packet left alone.
    let mut short = pattern(10);
    let before = short.clone();
    let hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        csum_start: 4,
        csum_offset: 5,
        ..VnetHdr::default()
    };
    assert_eq!(
        complete_checksum(&hdr, &mut short),
        Err(Malformed::ChecksumOffsets {
            start: 4,
            offset: 5
        }
        .into())
    );
    assert_eq!(short, before);
}

#[test]
fn a_plain_packet_is_copied_unchanged() {
    let packet = pattern(1400);
    let mut out = vec![0u8; 1400];
    let segments = segment(&VnetHdr::default(), &packet, &mut out, 1400).unwrap();
    assert_eq!((segments.len(), segments.last_len()), (1, 1400));
    assert_eq!(out, packet);
    assert!(matches!(
        segment(&VnetHdr::default(), &packet, &mut out[..10], 1400),
        Err(OffloadError::OutputTooSmall { .. })
    ));
}

fn arb_builder() -> impl Strategy<Value = TcpBuilder> {
    (
        any::<bool>(),
        0usize..=10,
        0usize..=10,
        any::<u32>(),
        any::<u16>(),
        any::<u8>(),
        0usize..6000,
    )
        .prop_map(|(v6, ip_words, tcp_words, seq, id, flags, len)| {
            let mut b = if v6 {
                TcpBuilder::v6()
            } else {
                TcpBuilder::v4().ip_options(ip_words * 4)
            };
            b = b
                .tcp_options(tcp_words * 4)
                .seq(seq)
                .flags(flags)
                .payload(pattern(len));
            b.id = id;
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn well_formed_super_packets_segment_correctly(builder in arb_builder(), gso_size in 1u16..=1400) {
        // Keep segments within the stride.
        prop_assume!(builder.headers_len() + usize::from(gso_size) <= STRIDE);
        check_segmentation(&builder, gso_size);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        flags: u8, gso_type in prop_oneof![Just(0u8), Just(1), Just(4), Just(0x81), any::<u8>()],
        hdr_len in 0u16..200, gso_size in 0u16..2000, csum_start in 0u16..200, csum_offset in 0u16..200,
        bytes in proptest::collection::vec(any::<u8>(), 0..3000), stride in 0usize..3000,
    ) {
        let hdr = VnetHdr { flags, gso_type, hdr_len, gso_size, csum_start, csum_offset };
        let mut out = vec![0u8; 8192];
        let _ = segment(&hdr, &bytes, &mut out, stride);
        let mut copy = bytes.clone();
        let _ = complete_checksum(&hdr, &mut copy);
    }

    #[test]
    fn mutated_super_packets_never_panic(
        builder in arb_builder(), gso_size in 0u16..1500,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        stride in 0usize..2000, out_len in 0usize..20_000,
    ) {
        let (hdr, mut packet) = builder.super_packet(gso_size);
        let headers = builder.headers_len();
        for (at, value) in flips {
            let i = at.index(headers.min(packet.len()));
            packet[i] = value;
        }
        let mut out = vec![0u8; out_len];
        if let Ok(segments) = segment(&hdr, &packet, &mut out, stride) {
            prop_assert!(segments.ranges().all(|r| r.end <= out.len() && r.len() <= stride));
        }
    }
}
