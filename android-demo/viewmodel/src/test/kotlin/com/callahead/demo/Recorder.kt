package com.callahead.demo

import uniffi.callahead.CallEvent
import uniffi.callahead.CallStatus
import uniffi.callahead.ConnectionState
import uniffi.callahead.CourierListener
import uniffi.callahead.OutboxState
import uniffi.callahead.StopState

/** An event as the listener received it, with the wall-clock time it arrived. */
data class Received(val event: CallEvent, val receivedWallMs: Long) {
    /** Cause on the server → callback on the JVM. */
    val latencyMs: Long get() = receivedWallMs - event.originWallMs
}

/** What a [Recorder] has seen so far (a copy). */
data class Seen(
    val stops: Map<Long, StopState>,
    val events: List<Received>,
    val connection: List<ConnectionState>,
    /** Every stop-change callback, in order. */
    val changes: List<StopState>,
)

/**
 * A [CourierListener] that records every callback and lets a test wait for
 * a condition on what was seen: woken by each callback, bounded by [WAIT].
 */
class Recorder : CourierListener {
    private val lock = Object()
    private val stops = LinkedHashMap<Long, StopState>()
    private val events = ArrayList<Received>()
    private val connection = ArrayList<ConnectionState>()
    private val changes = ArrayList<StopState>()

    override fun onStopChanged(stop: StopState) = record { stops[stop.stop.id] = stop; changes += stop }

    override fun onConnectionChanged(state: ConnectionState) = record { connection += state }

    override fun onEvent(event: CallEvent) {
        val now = System.currentTimeMillis()
        record { events += Received(event, now) }
    }

    private fun record(block: () -> Unit) = synchronized(lock) {
        block()
        lock.notifyAll()
    }

    fun seen(): Seen = synchronized(lock) { Seen(LinkedHashMap(stops), events.toList(), connection.toList(), changes.toList()) }

    /** Waits until [pred] holds for what was seen; fails after [WAIT] saying [what]. */
    fun await(what: String, pred: (Seen) -> Boolean): Seen {
        val deadline = System.nanoTime() + WAIT.toNanos()
        synchronized(lock) {
            while (true) {
                val seen = seen()
                if (pred(seen)) return seen
                val left = (deadline - System.nanoTime()) / 1_000_000
                if (left <= 0) throw AssertionError("timed out after $WAIT waiting for $what; saw ${describe(seen)}")
                lock.wait(left)
            }
        }
    }

    /**
     * Waits until some moment in the history of stop changes satisfied
     * [pred]: a moment between two wake-ups is not missed.
     */
    fun awaitMoment(what: String, pred: (Map<Long, StopState>) -> Boolean): Map<Long, StopState> {
        var found: Map<Long, StopState>? = null
        await(what) { seen ->
            val stops = LinkedHashMap<Long, StopState>()
            found = seen.changes.firstNotNullOfOrNull { change ->
                stops[change.stop.id] = change
                if (pred(stops)) LinkedHashMap(stops) else null
            }
            found != null
        }
        return found!!
    }

    fun awaitOnline() = await("the client to be online") { it.connection.lastOrNull() == ConnectionState.ONLINE }

    fun awaitAllTerminal(ids: Collection<Long>) =
        await("every requested call to finish") { s -> ids.all { id -> s.stops[id]?.let(::isTerminal) == true } }

    private fun describe(s: Seen) =
        "connection=${s.connection}, events=${s.events.size}, stops=" +
            s.stops.values.joinToString { "${it.stop.id}:${it.call?.status}/${it.call?.outcome}/${it.outbox}" }
}

fun isTerminal(s: StopState): Boolean =
    s.outbox == null && s.call?.status.let { it == CallStatus.FINISHED || it == CallStatus.CANCELLED }

/** Counts against the cap: a running call, or a request on its way. */
fun isActive(s: StopState): Boolean =
    s.outbox == OutboxState.Sending ||
        s.call?.status.let { it != null && it != CallStatus.FINISHED && it != CallStatus.CANCELLED }
