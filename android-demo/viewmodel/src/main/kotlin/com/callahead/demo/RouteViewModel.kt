package com.callahead.demo

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.channels.Channel
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
import uniffi.callahead.OutboxState
import uniffi.callahead.StopState
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
 */
class RouteViewModel(
    settings: ClientSettings,
    scope: CoroutineScope,
    private val clock: () -> Instant = Instant::now,
    /** Where blocking calls into the core (SQLite reads and writes) run. */
    private val io: CoroutineDispatcher = Dispatchers.IO,
) {
    private val _state = MutableStateFlow(RouteScreenState.EMPTY)
    val state: StateFlow<RouteScreenState> = _state.asStateFlow()

    /** Children of the caller's scope that [close] can end without ending it. */
    private val job = SupervisorJob(scope.coroutineContext.job)
    private val scope = CoroutineScope(scope.coroutineContext + job)

    private val inbox = Channel<Msg>(Channel.UNLIMITED)
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
    fun callNextHour() = inBackground { c ->
        val due = c.stopsDueWithin(clock(), 60u)
        if (due.isNotEmpty()) {
            post(Msg.Stops(c.requestCalls(due.map { it.stop.id })))
        }
    }

    fun callStop(stopId: Long) = inBackground { c -> post(Msg.Stops(c.requestCalls(listOf(stopId)))) }

    fun cancel(stopId: Long) = inBackground { c -> post(Msg.Stops(listOf(c.cancel(stopId)))) }

    /** Moves the stop at row [from] to row [to] (drag to reorder). */
    fun moveStop(from: Int, to: Int) {
        // TODO(route planning): send the new order with CourierClient.reorderStops
        // and show its ETAs once the core exposes them; until then a no-op.
    }

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

    private fun inBackground(block: suspend (CourierClient) -> Unit) {
        val c = client ?: return
        scope.launch(io) {
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

    private fun onEvent(e: CallEvent) {
        if (e.kind == "route_replaced" && model.date.isNotEmpty()) {
            // The dispatcher changed the route: fetch it again.
            scope.launch { sync(model.date) }
            return
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
        val stops = LinkedHashMap<Long, StopState>()
        val timelines = HashMap<Long, MutableList<TimelineEntry>>()
        var connection = ConnectionState.OFFLINE
        var wentOffline = false
        var heardConnection = false
        var error: String? = null

        fun timeline(stopId: Long) = timelines.getOrPut(stopId) { mutableListOf() }

        fun replaceRoute(date: String, states: List<StopState>, now: Instant) {
            if (date != this.date) timelines.clear()
            this.date = date
            val ids = states.map { it.stop.id }.toSet()
            stops.keys.retainAll(ids)
            timelines.keys.retainAll(ids)
            states.forEach { put(it, now) }
        }

        fun put(new: StopState, now: Instant) {
            val old = stops[new.stop.id]
            // Before the first sync a callback may name a stop of an old route.
            if (old == null && date.isEmpty()) return
            val merged = newer(old, new)
            stops[new.stop.id] = merged
            val before = old?.outbox
            val after = merged.outbox
            if (after == OutboxState.Queued && before == null) timeline(new.stop.id).add(TimelineEntry(now, "Queued"))
            if (after is OutboxState.Failed && before !is OutboxState.Failed) {
                timeline(new.stop.id).add(TimelineEntry(now, "Not sent: ${after.message}"))
            }
        }

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
            val ordered = stops.values.sortedBy { it.stop.position }
            val rows = ordered.mapIndexed { index, s ->
                val status = Presentation.status(s)
                StopRow(
                    stopId = s.stop.id,
                    sequence = index,
                    customerName = s.stop.customerName,
                    address = s.stop.address,
                    windowText = Presentation.windowText(s),
                    etaText = null,
                    windowFit = WindowFit.UNKNOWN,
                    status = status,
                    statusText = Presentation.statusText(s, status),
                    timeline = timelines[s.stop.id]?.toList() ?: emptyList(),
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
