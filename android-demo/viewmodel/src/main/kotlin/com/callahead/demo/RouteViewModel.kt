package com.callahead.demo

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.job
import kotlinx.coroutines.launch
import uniffi.callahead.Call
import uniffi.callahead.CallEvent
import uniffi.callahead.CallStatus
import uniffi.callahead.ClientSettings
import uniffi.callahead.ConnectionState
import uniffi.callahead.CourierClient
import uniffi.callahead.CourierListener
import uniffi.callahead.GeoPoint
import uniffi.callahead.OutboxState
import uniffi.callahead.PlannedStop
import uniffi.callahead.StopState
import uniffi.callahead.StopTimeline
import java.time.Instant

/**
 * The route screen's state holder, plain Kotlin (no Android types), so the
 * Compose screen and the JVM tests use the same class.
 *
 * It opens the [CourierClient] itself. The client's listener is called from
 * the core's own threads: it only posts to [inbox] and returns at once. One
 * coroutine reads the inbox and is the only writer of the state, so
 * callbacks, sync results and errors are applied one at a time, in order.
 * Failures end up in [RouteScreenState.error], never as a crash.
 *
 * Stops are shown in the courier's planned order with the core's ETA and
 * window fit ([CourierClient.plan]); the plan is refreshed after every change
 * that can move it and once a minute, since ETAs move with the clock.
 */
class RouteViewModel(
    settings: ClientSettings,
    scope: CoroutineScope,
    private val clock: () -> Instant = Instant::now,
    /** Where blocking calls into the core (SQLite reads and writes) run. */
    private val io: CoroutineDispatcher = Dispatchers.IO,
    /** How often ETAs are recomputed while nothing else changes. */
    private val planRefreshMillis: Long = 60_000,
) {
    private val _state = MutableStateFlow(RouteScreenState.EMPTY)
    val state: StateFlow<RouteScreenState> = _state.asStateFlow()

    /** Children of the caller's scope that [close] can end without ending it. */
    private val job = SupervisorJob(scope.coroutineContext.job)
    private val scope = CoroutineScope(scope.coroutineContext + job)

    private val inbox = Channel<Msg>(Channel.UNLIMITED)

    /** Local commands run one at a time, in the order given (two quick moves stay two moves). */
    private val serial = io.limitedParallelism(1)
    private val model = Model()
    private val client: CourierClient?

    init {
        this.scope.launch { for (msg in inbox) reduce(msg) }
        client = try {
            CourierClient.open(settings, Listener(inbox))
        } catch (e: Exception) {
            post(Msg.Failure(e))
            null
        } catch (e: LinkageError) {
            // The native library is missing or does not match the bindings.
            post(Msg.Failure(e))
            null
        }
        client?.let { c ->
            runCatching { c.connectionState() }.onSuccess { post(Msg.Connection(it, fromListener = false)) }
            // Offline-first: the route stored by the last sync shows at once.
            onSerial { post(Msg.Stored(it.stops())) }
            this.scope.launch {
                while (true) {
                    refreshPlan()
                    delay(planRefreshMillis)
                }
            }
        }
    }

    /** Downloads the route for [date] (`YYYY-MM-DD`); returns once the state shows it. */
    suspend fun sync(date: String) {
        val c = client ?: return
        val applied = CompletableDeferred<Unit>()
        val msg: Msg = try {
            Msg.Synced(date, c.syncRoute(date), applied)
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            Msg.Failure(e, applied)
        }
        if (inbox.trySend(msg).isSuccess) applied.await()
    }

    /** The big button: a smart call to every stop whose window opens within the hour. */
    fun callNextHour() = onSerial { c ->
        val due = c.stopsDueWithin(clock(), 60u)
        if (due.isNotEmpty()) {
            post(Msg.Stops(c.requestCalls(due.map { it.stop.id })))
        }
    }

    fun callStop(stopId: Long) = onSerial { c -> post(Msg.Stops(c.requestCalls(listOf(stopId)))) }

    fun cancel(stopId: Long) = inBackground { c -> post(Msg.Stops(listOf(c.cancel(stopId)))) }

    /**
     * Moves the stop at row [from] to row [to] (drag to reorder). Shown at
     * once, saved locally (offline too), synced to the server by the core.
     */
    fun moveStop(from: Int, to: Int) = post(Msg.Move(from, to))

    /** Marks a stop delivered (or not): it leaves the ETA chain. */
    fun setVisited(stopId: Long, visited: Boolean) = onSerial { c ->
        post(Msg.Stops(listOf(c.setVisited(stopId, visited))))
        planNow(c)
    }

    /** The courier's position, when the app knows it: ETAs start from there. */
    fun setOrigin(origin: GeoPoint?) {
        this.origin = origin
        refreshPlan()
    }

    /** Recomputes ETAs now (e.g. when the screen comes back). */
    fun refreshPlan() = onSerial { c -> planNow(c) }

    @Volatile
    private var origin: GeoPoint? = null

    private fun planNow(c: CourierClient) = post(Msg.Planned(c.plan(clock(), origin)))

    /** Hides the current error. */
    fun dismissError() = post(Msg.DismissError)

    /** Stops the client's background work; the local database keeps everything. */
    fun close() {
        inbox.close()
        job.cancel()
        // Nobody reads the inbox any more: release whoever waits on it.
        while (true) {
            when (val msg = inbox.tryReceive().getOrNull() ?: break) {
                is Msg.Synced -> msg.applied.complete(Unit)
                is Msg.Failure -> msg.applied?.complete(Unit)
                else -> {}
            }
        }
        client?.let {
            runCatching { it.shutdown() }
            it.close()
        }
    }

    private fun post(msg: Msg) {
        inbox.trySend(msg)
    }

    /** Quick local work (SQLite) off the caller's thread, one command at a time. */
    private fun onSerial(block: suspend (CourierClient) -> Unit) = inBackground(serial, block)

    private fun inBackground(block: suspend (CourierClient) -> Unit) = inBackground(io, block)

    private fun inBackground(dispatcher: CoroutineDispatcher, block: suspend (CourierClient) -> Unit) {
        val c = client ?: return
        scope.launch(dispatcher) {
            try {
                block(c)
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                post(Msg.Failure(e))
            }
        }
    }

    // ---------------------------------------------------------------- the one writer

    private fun reduce(msg: Msg) {
        when (msg) {
            is Msg.StopChanged -> model.put(msg.stop, clock())
            is Msg.Stops -> msg.stops.forEach { model.put(it, clock()) }
            is Msg.Event -> onEvent(msg.event)
            is Msg.Connection -> if (msg.fromListener) {
                model.heardConnection = true
                // Offline is the core's default before it tries; only a
                // reported drop (or a failed request) shows the banner.
                if (msg.state == ConnectionState.OFFLINE) model.wentOffline = true
                if (msg.state == ConnectionState.ONLINE) model.wentOffline = false
                model.connection = msg.state
            } else if (!model.heardConnection) {
                model.connection = msg.state
            }
            is Msg.Synced -> {
                model.replaceRoute(msg.date, msg.stops, clock())
                model.error = null
                refreshPlan()
                loadTimelines(msg.stops.map { it.stop.id })
            }
            is Msg.Stored -> if (!model.hasRoute) {
                model.replaceRoute(model.date, msg.stops, clock())
                loadTimelines(msg.stops.map { it.stop.id })
            }
            is Msg.Timelines -> model.loadTimelines(msg.timelines)
            is Msg.Planned -> model.plan(msg.plan, clock())
            is Msg.Move -> model.move(msg.from, msg.to)?.let { order ->
                onSerial { c ->
                    post(Msg.Stops(c.reorderStops(order)))
                    planNow(c)
                }
            }
            is Msg.Failure -> {
                if (msg.error is uniffi.callahead.CallaheadException.Offline) model.wentOffline = true
                model.error = Presentation.errorText(msg.error)
            }
            Msg.DismissError -> model.error = null
        }
        _state.value = model.render()
        when (msg) {
            is Msg.Synced -> msg.applied.complete(Unit)
            is Msg.Failure -> msg.applied?.complete(Unit)
            else -> {}
        }
    }

    /** Each stop's story as the core stored it: complete after a restart, offline too. */
    private fun loadTimelines(ids: List<Long>) = onSerial { c ->
        post(Msg.Timelines(ids.associateWith { c.timeline(it) }))
    }

    private fun onEvent(e: CallEvent) {
        // Already part of a timeline loaded from the core.
        if (!model.seenSeqs.add(e.seq)) return
        if (e.kind == "route_replaced" && model.date.isNotEmpty()) {
            // The dispatcher changed the route: fetch it again.
            scope.launch { sync(model.date) }
            return
        }
        if (e.kind == "route_planned") {
            // Reordered on another of the courier's devices, or re-planned by
            // the server after a customer's answer (then also on that stop's timeline).
            refreshPlan()
            if (e.replanReason == null) return
        }
        val stopId = e.stopId ?: return
        val label = Presentation.eventLabel(e) ?: return
        model.timeline(stopId).add(TimelineEntry(e.at, label))
    }

    private sealed interface Msg {
        data class StopChanged(val stop: StopState) : Msg
        data class Stops(val stops: List<StopState>) : Msg
        data class Event(val event: CallEvent) : Msg
        data class Connection(val state: ConnectionState, val fromListener: Boolean) : Msg
        data class Synced(val date: String, val stops: List<StopState>, val applied: CompletableDeferred<Unit>) : Msg
        data class Stored(val stops: List<StopState>) : Msg
        data class Planned(val plan: List<PlannedStop>) : Msg
        data class Timelines(val timelines: Map<Long, StopTimeline>) : Msg
        data class Move(val from: Int, val to: Int) : Msg
        data class Failure(val error: Throwable, val applied: CompletableDeferred<Unit>? = null) : Msg
        data object DismissError : Msg
    }

    /** Called on the core's threads: never blocks, never throws. */
    private class Listener(private val inbox: Channel<Msg>) : CourierListener {
        override fun onStopChanged(stop: StopState) {
            inbox.trySend(Msg.StopChanged(stop))
        }

        override fun onConnectionChanged(state: ConnectionState) {
            inbox.trySend(Msg.Connection(state, fromListener = true))
        }

        override fun onEvent(event: CallEvent) {
            inbox.trySend(Msg.Event(event))
        }
    }

    /** Mutable state, touched only by [reduce]. */
    private class Model {
        var date = ""
        /** A route was synced or read from the local database. */
        var hasRoute = false
        val stops = LinkedHashMap<Long, StopState>()
        val timelines = HashMap<Long, MutableList<TimelineEntry>>()
        /** Events already in [timelines], by seq: live ones are not added twice. */
        val seenSeqs = HashSet<ULong>()
        /** ETA and window fit by stop, from the last plan. */
        val etas = HashMap<Long, PlannedStop>()
        var connection = ConnectionState.OFFLINE
        var wentOffline = false
        var heardConnection = false
        var error: String? = null

        fun timeline(stopId: Long) = timelines.getOrPut(stopId) { mutableListOf() }

        fun replaceRoute(date: String, states: List<StopState>, now: Instant) {
            if (date != this.date) timelines.clear()
            this.date = date
            hasRoute = true
            val ids = states.map { it.stop.id }.toSet()
            stops.keys.retainAll(ids)
            timelines.keys.retainAll(ids)
            etas.keys.retainAll(ids)
            states.forEach { put(it, now) }
        }

        fun put(new: StopState, now: Instant) {
            val old = stops[new.stop.id]
            // Before the route is known a callback may name a stop of an old one.
            if (old == null && !hasRoute) return
            val merged = newer(old, new)
            stops[new.stop.id] = merged
            val before = old?.outbox
            val after = merged.outbox
            if (after == OutboxState.Queued && before == null) timeline(new.stop.id).add(TimelineEntry(now, "Queued"))
            if (after is OutboxState.Failed && before !is OutboxState.Failed) {
                timeline(new.stop.id).add(TimelineEntry(now, "Not sent: ${after.message}"))
            }
        }

        /** Replaces each stop's timeline with the core's stored one (events, then a tap not yet sent). */
        fun loadTimelines(stored: Map<Long, StopTimeline>) {
            for ((id, t) in stored) {
                if (id !in stops) continue
                val entries = t.events.mapNotNull { e -> Presentation.eventLabel(e)?.let { TimelineEntry(e.at, it) } }
                    .toMutableList()
                // A tap not yet sent is always the newest part of the story.
                t.requestedAt?.let { entries.add(TimelineEntry(it, "Queued")) }
                timelines[id] = entries
                t.events.forEach { seenSeqs.add(it.seq) }
            }
        }

        fun plan(plan: List<PlannedStop>, now: Instant) {
            etas.clear()
            for (p in plan) {
                if (p.state.stop.id !in stops) continue
                etas[p.state.stop.id] = p
                put(p.state, now)
            }
        }

        /** Planned order, with the stop at row [from] moved to row [to]; null if nothing moves. */
        fun move(from: Int, to: Int): List<Long>? {
            val order = ordered().map { it.stop.id }.toMutableList()
            if (from !in order.indices || to !in order.indices || from == to) return null
            order.add(to, order.removeAt(from))
            // Shown at once; the core's answer confirms it.
            order.forEachIndexed { i, id ->
                stops[id]?.let { s -> stops[id] = s.copy(stop = s.stop.copy(sequence = i.toUInt())) }
            }
            return order
        }

        private fun ordered() = stops.values.sortedWith(compareBy({ it.stop.sequence }, { it.stop.position }))

        /**
         * Callbacks come from two of the core's tasks (the sender and the
         * websocket), so an older snapshot of a call can arrive after a newer
         * one: keep the newer call.
         */
        private fun newer(old: StopState?, new: StopState): StopState {
            val o = old?.call ?: return new
            val n = new.call ?: return new
            if (o.id != n.id) return new
            return if (progress(n) < progress(o)) new.copy(call = o) else new
        }

        private fun progress(c: Call): Pair<Instant, Int> {
            val rank = when (c.status) {
                CallStatus.SCHEDULED -> 0
                CallStatus.DIALING -> 1
                CallStatus.RINGING -> 2
                CallStatus.ANSWERED -> 3
                CallStatus.FINISHED, CallStatus.CANCELLED -> 4
            }
            return c.updatedAt to (c.attemptsMade.toInt() * 10 + rank)
        }

        private operator fun Pair<Instant, Int>.compareTo(other: Pair<Instant, Int>): Int =
            compareValuesBy(this, other, { it.first }, { it.second })

        fun render(): RouteScreenState {
            val rows = ordered().mapIndexed { index, s ->
                val status = Presentation.status(s)
                val planned = etas[s.stop.id]
                StopRow(
                    stopId = s.stop.id,
                    sequence = index,
                    customerName = s.stop.customerName,
                    address = s.stop.address,
                    windowText = Presentation.windowText(s),
                    etaText = planned?.eta?.let { Presentation.time(it, s.stop.timeZone) },
                    windowFit = Presentation.windowFit(planned?.windowFit),
                    status = status,
                    statusText = Presentation.statusText(s, status),
                    timeline = timelines[s.stop.id]?.toList() ?: emptyList(),
                    visited = s.visited,
                    outOfChain = s.stop.outOfChain?.let(Presentation::outOfChainText),
                )
            }
            val active = stops.values.count { s ->
                s.call?.status?.let { it != CallStatus.FINISHED && it != CallStatus.CANCELLED } == true ||
                    s.outbox == OutboxState.Sending
            }
            return RouteScreenState(
                date = date,
                stops = rows,
                connection = connection,
                offlineBanner = wentOffline && connection != ConnectionState.ONLINE,
                activeCalls = active,
                queued = stops.values.count { it.outbox == OutboxState.Queued },
                error = error,
            )
        }
    }
}
