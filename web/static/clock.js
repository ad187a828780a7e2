// The offset between the server's clock and this browser's, so that delivery
// latency (now − published_at) is not skewed by a clock that is off.
// Like NTP in miniature: ask GET /api/time a few times and trust the answer
// with the shortest round trip, assuming the server read its clock halfway.

export async function measureClockOffset(samples = 5) {
  let best = null;
  for (let i = 0; i < samples; i++) {
    try {
      const sent = Date.now();
      const response = await fetch("/api/time", { cache: "no-store" });
      const { now_ms: serverNow } = await response.json();
      const received = Date.now();
      const roundTrip = received - sent;
      if (best === null || roundTrip < best.roundTrip) {
        best = { roundTrip, offset: serverNow - (sent + received) / 2 };
      }
    } catch {
      // A failed sample is simply not used.
    }
  }
  return best ? best.offset : 0;
}

/** A duration for people: milliseconds under a second, seconds above. */
export function formatMs(ms) {
  return ms < 1000 ? `${Math.max(0, Math.round(ms))} ms` : `${(ms / 1000).toFixed(2)} s`;
}
