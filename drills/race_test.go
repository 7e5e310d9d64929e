//go:build race

package drills

// raceEnabled: the race detector slows everything several times over, so
// latency margins are widened (see margin).
const raceEnabled = true
