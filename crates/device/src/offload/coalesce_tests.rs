use super::*;
use crate::offload::packet::{TCP_FIN, TCP_PSH};
use crate::offload::segment::segment;
use crate::offload::testutil::{tcp_fields, verifies as packet_verifies, TcpBuilder};
use proptest::prelude::*;

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 97) as u8 ^ salt).collect()
}

/// `stream` cut into `mss` segments the way a sender would send them:
/// consecutive sequence numbers and IPv4 IDs, PSH on the last.
fn segments_of(base: &TcpBuilder, stream: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = stream.chunks(mss).collect();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut b = base.clone().payload(piece.to_vec());
            b.seq = base.seq.wrapping_add((i * mss) as u32);
            b.id = base.id.wrapping_add(i as u16);
            b.flags = if i + 1 == pieces.len() {
                TCP_ACK | TCP_PSH
            } else {
                TCP_ACK
            };
            b.build()
        })
        .collect()
}

fn coalesce_all(packets: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut coalescer = Coalescer::new();
    let mut out = vec![0u8; packets.iter().map(|p| p.len() + VnetHdr::LEN).sum()];
    let ranges = coalescer.coalesce(packets, &mut out).unwrap().to_vec();
    ranges
        .into_iter()
        .map(|r| {
            let bytes = &out[r];
            (
                VnetHdr::decode(bytes).unwrap(),
                bytes[VnetHdr::LEN..].to_vec(),
            )
        })
        .collect()
}

/// What the kernel would see after segmenting an output again.
fn expand(hdr: &VnetHdr, packet: &[u8]) -> Vec<Vec<u8>> {
    if hdr.gso_type == VnetHdr::GSO_NONE {
        assert_eq!(*hdr, VnetHdr::default());
        return vec![packet.to_vec()];
    }
    let mut out = vec![0u8; 200 * 2048];
    let segments = segment(hdr, packet, &mut out, 2048).unwrap();
    segments.ranges().map(|r| out[r].to_vec()).collect()
}

#[test]
fn an_in_order_flow_becomes_one_super_packet_per_version() {
    for base in [
        TcpBuilder::v4().tcp_options(12),
        TcpBuilder::v6().tcp_options(12),
    ] {
        let stream = pattern(10 * 1380 + 500, 1);
        let packets = segments_of(&base, &stream, 1380);
        let outputs = coalesce_all(&packets);
        assert_eq!(outputs.len(), 1);
        let (hdr, merged) = &outputs[0];
        let ip_len = base.ip_len();
        assert_eq!(
            *hdr,
            VnetHdr {
                flags: VnetHdr::F_NEEDS_CSUM,
                gso_type: if base.v6 {
                    VnetHdr::GSO_TCPV6
                } else {
                    VnetHdr::GSO_TCPV4
                },
                hdr_len: (ip_len + 32) as u16,
                gso_size: 1380,
                csum_start: ip_len as u16,
                csum_offset: 16,
            }
        );
        // Exactly what the kernel's own TSO would have handed us.
        let (_, kernel_like) = base
            .clone()
            .payload(stream.clone())
            .flags(TCP_ACK | TCP_PSH)
            .super_packet(1380);
        assert_eq!(merged, &kernel_like);
        assert_eq!(expand(hdr, merged), packets);
    }
}

#[test]
fn flows_interleave_and_non_tcp_passes_through_in_place() {
    let a = TcpBuilder::v4();
    let mut b = TcpBuilder::v4();
    b.sport = 40001;
    let c = TcpBuilder::v6();
    let (sa, sb, sc) = (
        segments_of(&a, &pattern(4000, 1), 1000),
        segments_of(&b, &pattern(3000, 2), 1000),
        segments_of(&c, &pattern(2000, 3), 1000),
    );
    let mut udp = a.clone().payload(vec![9; 50]).build();
    udp[9] = 17;
    let packets = vec![
        sa[0].clone(),
        sb[0].clone(),
        udp.clone(),
        sa[1].clone(),
        sc[0].clone(),
        sb[1].clone(),
        sa[2].clone(),
        sc[1].clone(),
        sb[2].clone(),
        sa[3].clone(),
        b"junk".to_vec(),
    ];
    let outputs = coalesce_all(&packets);
    let bodies: Vec<&Vec<u8>> = outputs.iter().map(|(_, p)| p).collect();
    assert_eq!(outputs.len(), 5);
    assert_eq!(expand(&outputs[0].0, bodies[0]), sa);
    assert_eq!(expand(&outputs[1].0, bodies[1]), sb);
    assert_eq!((outputs[2].0, bodies[2]), (VnetHdr::default(), &udp));
    assert_eq!(expand(&outputs[3].0, bodies[3]), sc);
    assert_eq!(
        (outputs[4].0, bodies[4].as_slice()),
        (VnetHdr::default(), &b"junk"[..])
    );
}

#[test]
fn gaps_duplicates_and_reordering_do_not_merge() {
    let s = segments_of(&TcpBuilder::v4(), &pattern(5000, 4), 1000);
    let cases: [(&[usize], usize); 4] = [
        (&[0, 2], 2),       // a gap
        (&[0, 1, 1, 2], 2), // a duplicate ends [0, 1] and starts [1, 2]
        (&[1, 0], 2),       // reversed
        (&[0, 1, 3, 4], 2), // two runs
    ];
    for (order, expected) in cases {
        let packets: Vec<Vec<u8>> = order.iter().map(|&i| s[i].clone()).collect();
        let outputs = coalesce_all(&packets);
        assert_eq!(outputs.len(), expected, "order {order:?}");
        let expanded: Vec<Vec<u8>> = outputs.iter().flat_map(|(h, p)| expand(h, p)).collect();
        assert_eq!(expanded, packets, "order {order:?}");
    }
}

#[test]
fn psh_a_short_segment_or_a_barrier_ends_a_run() {
    let base = TcpBuilder::v4();
    let mut s = segments_of(&base, &pattern(4000, 5), 1000);
    // PSH on segment 1: [0, 1] merge, then [2, 3].
    s[1] = TcpBuilder {
        seq: base.seq + 1000,
        id: base.id + 1,
        flags: TCP_ACK | TCP_PSH,
        ..base.clone()
    }
    .payload(pattern(4000, 5)[1000..2000].to_vec())
    .build();
    let outputs = coalesce_all(&s);
    assert_eq!(outputs.len(), 2);
    assert_eq!(tcp_fields(&outputs[0].1).1, TCP_ACK | TCP_PSH);
    assert_eq!(
        outputs
            .iter()
            .flat_map(|(h, p)| expand(h, p))
            .collect::<Vec<_>>(),
        s
    );

    // A short segment may end a run but not continue one.
    let packets: Vec<Vec<u8>> = [(0, 1000), (1000, 500), (1500, 1000)]
        .iter()
        .map(|&(offset, len)| {
            base.clone()
                .seq(base.seq + offset)
                .payload(vec![1; len])
                .build()
        })
        .collect();
    let outputs = coalesce_all(&packets);
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0].1.len(), 40 + 1500);

    // A FIN (no payload) between in-sequence data keeps them apart.
    let s = segments_of(&base, &pattern(3000, 7), 1000);
    let fin = base
        .clone()
        .seq(base.seq + 2000)
        .flags(TCP_ACK | TCP_FIN)
        .build();
    let packets = vec![s[0].clone(), s[1].clone(), fin.clone(), s[2].clone()];
    let outputs = coalesce_all(&packets);
    assert_eq!(outputs.len(), 3);
    assert_eq!(outputs[1].1, fin);
    assert_eq!(
        outputs
            .iter()
            .flat_map(|(h, p)| expand(h, p))
            .collect::<Vec<_>>(),
        packets
    );
}

#[test]
fn header_differences_keep_segments_apart() {
    let base = TcpBuilder::v4().tcp_options(12);
    let stream = pattern(2000, 8);
    let tweaks: [fn(&mut TcpBuilder); 6] = [
        |b| b.ack += 1,
        |b| b.window += 1,
        |b| b.ttl -= 1,
        |b| b.df = false,
        |b| b.tos = 4,
        |b| b.dport += 1,
    ];
    for tweak in tweaks {
        let mut second = base
            .clone()
            .payload(stream[1000..].to_vec())
            .seq(base.seq + 1000);
        second.id = base.id + 1;
        tweak(&mut second);
        let packets = vec![
            base.clone().payload(stream[..1000].to_vec()).build(),
            second.build(),
        ];
        assert_eq!(coalesce_all(&packets).len(), 2);
    }
    // Different option bytes (a timestamp that moved).
    let s = segments_of(&base, &stream, 1000);
    let mut moved = s[1].clone();
    moved[20 + 25] ^= 1;
    fix_tcp_checksum(&mut moved, 20);
    assert_eq!(coalesce_all(&[s[0].clone(), moved]).len(), 2);
    // Without DF, IPv4 IDs must count up (re-segmenting renumbers them).
    let mut no_df = base.clone();
    no_df.df = false;
    let s = segments_of(&no_df, &stream, 1000);
    assert_eq!(coalesce_all(&s).len(), 1);
    let mut skipped = s.clone();
    skipped[1][5] ^= 2;
    crate::offload::packet::fill_ipv4_checksum(&mut skipped[1], 20);
    assert_eq!(coalesce_all(&skipped).len(), 2);
    // IPv4 options never merge.
    let opt = TcpBuilder::v4().ip_options(4);
    assert_eq!(coalesce_all(&segments_of(&opt, &stream, 1000)).len(), 2);
}

fn fix_tcp_checksum(packet: &mut [u8], ip_len: usize) {
    crate::offload::packet::fill_tcp_checksum(packet, IpVersion::V4, ip_len);
}

#[test]
fn bad_checksums_are_never_laundered() {
    let s = segments_of(&TcpBuilder::v4(), &pattern(3000, 9), 1000);
    // A corrupt middle segment passes through as it came; the run ends there.
    let mut bad = s.clone();
    bad[1][60] ^= 0xff;
    let outputs = coalesce_all(&bad);
    assert_eq!(outputs.len(), 3);
    assert!(outputs.iter().all(|(h, _)| *h == VnetHdr::default()));
    assert_eq!(outputs[1].1, bad[1]);
    // A corrupt first segment stays alone; the rest merge.
    let mut bad = s.clone();
    bad[0][60] ^= 0xff;
    let outputs = coalesce_all(&bad);
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0], (VnetHdr::default(), bad[0].clone()));
    assert_eq!(expand(&outputs[1].0, &outputs[1].1), s[1..]);
    // A corrupt IPv4 header checksum likewise.
    let mut bad = s.clone();
    bad[1][10] ^= 1;
    assert_eq!(coalesce_all(&bad).len(), 3);
}

#[test]
fn super_packets_stop_at_64k() {
    let base = TcpBuilder::v4();
    let s = segments_of(&base, &pattern(100 * 1380, 10), 1380);
    let outputs = coalesce_all(&s);
    // 47 full segments fit in 65535 - 40 bytes of payload; then the next run.
    assert_eq!(outputs.len(), 3);
    assert!(outputs.iter().all(|(_, p)| p.len() <= MAX_SUPER_PACKET));
    assert_eq!(outputs[0].1.len(), 40 + 47 * 1380);
    assert_eq!(
        outputs
            .iter()
            .flat_map(|(h, p)| expand(h, p))
            .collect::<Vec<_>>(),
        s
    );
}

#[test]
fn a_small_output_buffer_is_refused_up_front() {
    let s = segments_of(&TcpBuilder::v4(), &pattern(3000, 11), 1000);
    let mut coalescer = Coalescer::new();
    let mut out = vec![0u8; 3000 + 40 + 9];
    assert_eq!(
        coalescer.coalesce(&s, &mut out),
        Err(OffloadError::OutputTooSmall {
            needed: 3050,
            available: 3049
        })
    );
    assert!(out.iter().all(|b| *b == 0));
    let mut out = vec![0u8; 3050];
    let ranges = coalescer.coalesce(&s, &mut out).unwrap();
    assert_eq!((ranges.len(), ranges.first()), (1, Some(&(0..3050))));
    // Reused: an empty batch yields nothing.
    assert!(coalescer
        .coalesce::<Vec<u8>>(&[], &mut out)
        .unwrap()
        .is_empty());
}

#[test]
fn segment_then_coalesce_gives_back_the_super_packet() {
    for base in [TcpBuilder::v4(), TcpBuilder::v6().tcp_options(20)] {
        let builder = base
            .payload(pattern(65000 - 80, 12))
            .flags(TCP_ACK | TCP_PSH);
        let (hdr, packet) = builder.super_packet(1400);
        let mut out = vec![0u8; 50 * 1500];
        let segments = segment(&hdr, &packet, &mut out, 1500).unwrap();
        let pieces: Vec<&[u8]> = segments.ranges().map(|r| &out[r]).collect();
        let mut coalescer = Coalescer::new();
        let mut merged = vec![0u8; 70_000];
        let ranges = coalescer.coalesce(&pieces, &mut merged).unwrap();
        assert_eq!(ranges.len(), 1);
        let bytes = &merged[ranges[0].clone()];
        assert_eq!(VnetHdr::decode(bytes).unwrap(), hdr);
        assert_eq!(&bytes[VnetHdr::LEN..], &packet[..]);
    }
}

/// A flow for the property tests: a stream cut mostly at `mss` (now and
/// then shorter), IDs and sequence numbers consecutive, PSH here and there,
/// and now and then a pure ACK (a packet that must not be merged past).
fn arb_flow(index: u16) -> impl Strategy<Value = (TcpBuilder, Vec<Vec<u8>>)> {
    let piece = (
        proptest::bool::weighted(0.15),
        1usize..400,
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.1),
    );
    (
        any::<bool>(),
        any::<bool>(),
        any::<u32>(),
        1usize..400,
        proptest::collection::vec(piece, 1..12),
    )
        .prop_map(move |(v6, df, seq, mss, pieces)| {
            let mut base = if v6 {
                TcpBuilder::v6()
            } else {
                TcpBuilder::v4()
            };
            base.sport = 1000 + index;
            base.seq = seq;
            base.id = seq as u16;
            base.df = df;
            let mut packets = Vec::new();
            let mut offset = 0usize;
            let mut id = base.id;
            for (short, short_len, psh, ack_after) in pieces {
                let len = if short { short_len.min(mss) } else { mss };
                let mut b = base
                    .clone()
                    .payload(pattern(len, index as u8 ^ offset as u8));
                b.seq = seq.wrapping_add(offset as u32);
                b.id = id;
                b.flags = if psh { TCP_ACK | TCP_PSH } else { TCP_ACK };
                packets.push(b.build());
                offset += len;
                id = id.wrapping_add(1);
                if ack_after {
                    let mut ack = base.clone();
                    ack.seq = seq.wrapping_add(offset as u32);
                    ack.id = id;
                    ack.ack += 1;
                    packets.push(ack.build());
                    id = id.wrapping_add(1);
                }
            }
            (base, packets)
        })
}

/// Arrival order: the flows interleaved at random, some packets
/// duplicated, some moved a few places.
fn arb_arrivals() -> impl Strategy<Value = Vec<Vec<u8>>> {
    (
        arb_flow(0),
        arb_flow(1),
        arb_flow(2),
        proptest::collection::vec((0usize..3, 0usize..4, any::<prop::sample::Index>()), 0..48),
    )
        .prop_map(|(a, b, c, moves)| {
            let mut queues = [a.1, b.1, c.1];
            let mut arrivals = Vec::new();
            let mut cursor = [0usize; 3];
            for (flow, action, pick) in moves {
                let q = &queues[flow];
                match action {
                    0 | 1 if cursor[flow] < q.len() => {
                        arrivals.push(q[cursor[flow]].clone());
                        cursor[flow] += 1;
                    }
                    2 if !arrivals.is_empty() => {
                        let i = pick.index(arrivals.len());
                        arrivals.push(arrivals[i].clone());
                    }
                    3 if arrivals.len() > 1 => {
                        let i = pick.index(arrivals.len() - 1);
                        arrivals.swap(i, i + 1);
                    }
                    _ => {}
                }
            }
            for (flow, q) in queues.iter_mut().enumerate() {
                arrivals.extend(q.drain(cursor[flow]..));
            }
            arrivals
        })
}

/// `packet` with the IPv4 ID and header checksum zeroed if DF is set.
fn without_df_id(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    if p[0] >> 4 == 4 && p[6] & 0x40 != 0 {
        p[4..6].fill(0);
        p[10..12].fill(0);
    }
    p
}

fn flow_of(packet: &[u8]) -> Option<u16> {
    let h = crate::offload::packet::parse_tcp(packet).ok()?;
    Some(u16::from_be_bytes([packet[h.ip_len], packet[h.ip_len + 1]]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn coalescing_preserves_every_flow_exactly(arrivals in arb_arrivals()) {
        let outputs = coalesce_all(&arrivals);
        prop_assert!(outputs.len() <= arrivals.len());
        let mut expanded = Vec::new();
        for (hdr, packet) in &outputs {
            let pieces = expand(hdr, packet);
            if pieces.len() > 1 {
                // A merged output is one contiguous, ordered slice of one flow.
                let (seq0, _, _) = tcp_fields(&pieces[0]);
                let mut expect = seq0;
                for p in &pieces {
                    prop_assert!(packet_verifies(p));
                    prop_assert_eq!(flow_of(p), flow_of(&pieces[0]));
                    let (seq, _, payload) = tcp_fields(p);
                    prop_assert_eq!(seq, expect);
                    expect = seq.wrapping_add(payload.len() as u32);
                }
                prop_assert!(packet.len() <= MAX_SUPER_PACKET);
            }
            expanded.extend(pieces);
        }
        // Per flow, the kernel sees exactly the packets that arrived, in
        // order (modulo the IDs of DF packets and the IPv4 header checksum).
        for flow in 1000..1003 {
            let sent: Vec<Vec<u8>> = arrivals.iter().filter(|p| flow_of(p) == Some(flow)).map(|p| without_df_id(p)).collect();
            let seen: Vec<Vec<u8>> = expanded.iter().filter(|p| flow_of(p) == Some(flow)).map(|p| without_df_id(p)).collect();
            prop_assert_eq!(sent, seen);
        }
        prop_assert_eq!(expanded.len(), arrivals.len());
    }

    #[test]
    fn segment_coalesce_round_trips(
        v6: bool, tcp_words in 0usize..=10, seq: u32, id: u16, len in 1usize..20_000,
        gso_size in 1u16..1400, psh: bool,
    ) {
        let mut builder = if v6 { TcpBuilder::v6() } else { TcpBuilder::v4() };
        builder = builder.tcp_options(tcp_words * 4).seq(seq).payload(pattern(len, 13));
        builder.flags = if psh { TCP_ACK | TCP_PSH } else { TCP_ACK };
        builder.id = id;
        let (hdr, packet) = builder.super_packet(gso_size);
        let stride = builder.headers_len() + usize::from(gso_size);
        let mut out = vec![0u8; len.div_ceil(usize::from(gso_size)) * stride];
        let segments = segment(&hdr, &packet, &mut out, stride).unwrap();
        let pieces: Vec<&[u8]> = segments.ranges().map(|r| &out[r]).collect();
        let mut coalescer = Coalescer::new();
        let mut merged = vec![0u8; 70_000];
        let ranges = coalescer.coalesce(&pieces, &mut merged).unwrap().to_vec();
        prop_assert_eq!(ranges.len(), 1);
        let bytes = &merged[ranges[0].clone()];
        if pieces.len() == 1 {
            prop_assert_eq!(VnetHdr::decode(bytes).unwrap(), VnetHdr::default());
            prop_assert_eq!(&bytes[VnetHdr::LEN..], pieces[0]);
        } else {
            prop_assert_eq!(VnetHdr::decode(bytes).unwrap(), hdr);
            prop_assert_eq!(&bytes[VnetHdr::LEN..], &packet[..]);
        }
    }

    #[test]
    fn arbitrary_packets_never_panic(
        packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
        valid in arb_flow(5),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 0..8),
        out_len in 0usize..30_000,
    ) {
        let mut batch = packets;
        batch.extend(valid.1);
        for (which, at, value) in flips {
            let p = which.index(batch.len().max(1));
            if let Some(packet) = batch.get_mut(p) {
                if !packet.is_empty() {
                    let i = at.index(packet.len().min(80));
                    packet[i] = value;
                }
            }
        }
        let mut coalescer = Coalescer::new();
        let mut out = vec![0u8; out_len];
        if let Ok(ranges) = coalescer.coalesce(&batch, &mut out) {
            let mut end = 0;
            for r in ranges {
                prop_assert_eq!(r.start, end);
                prop_assert!(r.len() >= VnetHdr::LEN);
                end = r.end;
            }
            prop_assert!(end <= out.len());
        }
    }
}
