package com.callahead.demo

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import uniffi.callahead.ClientSettings
import uniffi.callahead.ConnectionState
import uniffi.callahead.CourierClient
import java.net.ServerSocket
import java.nio.file.Path
import java.time.Instant
import java.time.ZoneId
import java.time.format.DateTimeFormatter
import java.util.Collections
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** The view model the Android screen uses, over the real client core and the real server. */
class RouteViewModelTest {
    @TempDir
    lateinit var dir: Path

    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    private val closing = ArrayList<AutoCloseable>()

    @AfterEach
    fun tearDown() {
        closing.asReversed().forEach { runCatching { it.close() } }
        scope.cancel()
    }

    private fun viewModel(url: String, token: String, clock: () -> Instant = Instant::now): RouteViewModel {
        val vm = RouteViewModel(ClientSettings(dir.resolve("courier.db").toString(), url, token), scope, clock)
        closing += AutoCloseable { vm.close() }
        return vm
    }

    /** Waits for a state matching [pred]; fails after [WAIT]. */
    private fun RouteViewModel.await(what: String, pred: (RouteScreenState) -> Boolean): RouteScreenState =
        runBlocking {
            try {
                withTimeout(WAIT.toMillis()) { state.first(pred) }
            } catch (e: Exception) {
                throw AssertionError("timed out after $WAIT waiting for $what; last state ${state.value}", e)
            }
        }

    /** Every state the view model publishes, from now on. */
    private fun RouteViewModel.history(): List<RouteScreenState> {
        val seen = Collections.synchronizedList(ArrayList<RouteScreenState>())
        scope.launch { state.collect { seen += it } }
        return seen
    }

    @Test
    fun `the screen follows each call from the tap to its outcome`() {
        val server = LiveServer.start(dir).also { closing += it }
        val depot = Depot(server)
        val now = Instant.now()
        depot.importRoute(3, now)
        val vm = viewModel(server.url, depot.courierToken)
        val history = vm.history()

        runBlocking { vm.sync(depot.date.toString()) }
        val synced = vm.state.value
        assertEquals(depot.date.toString(), synced.date)
        assertEquals(listOf("Customer 0", "Customer 1", "Customer 2"), synced.stops.map { it.customerName })
        assertTrue(synced.stops.all { it.status == StopStatus.Idle && it.statusText == "Not called" })
        val moscow = DateTimeFormatter.ofPattern("HH:mm").withZone(ZoneId.of("Europe/Moscow"))
        assertEquals(
            "${moscow.format(now.plusSeconds(600))}–${moscow.format(now.plusSeconds(4200))}",
            synced.stops[0].windowText,
            "the window in the customer's time zone",
        )
        vm.await("online") { it.connection == ConnectionState.ONLINE }

        vm.callNextHour()
        // Done, and the attempt's own end recorded too: it may arrive just
        // after the outcome (the hang-up follows the key press), and the
        // restored story below must be compared with the whole one.
        val done = vm.await("every call and its attempt to end") { s ->
            s.stops.all { row -> row.status is StopStatus.Done && row.timeline.any { it.label.contains(" ended: ") } }
        }

        assertNull(done.error)
        assertEquals(0, done.activeCalls)
        assertEquals(0, done.queued)
        assertFalse(done.offlineBanner)
        for (row in done.stops) {
            val outcome = (row.status as StopStatus.Done).outcome
            assertEquals(Presentation.outcomeText(outcome), row.statusText)
            val labels = row.timeline.map { it.label }
            assertEquals("Queued", labels.first(), "${row.customerName}: $labels")
            for (expected in listOf("Call requested", "Attempt 1 dialing", "Attempt 1 ringing", "Attempt 1 answered")) {
                assertTrue(expected in labels, "${row.customerName}: $expected in $labels")
            }
            assertTrue(Presentation.outcomeText(outcome) in labels, "${row.customerName}: the outcome in $labels")
        }
        // The screen showed the story, not just the end: ringing,
        // answered; and never more than five calls at once.
        val statuses = history.toList().flatMap { s -> s.stops.map { it.status } }.toSet()
        for (expected in listOf(StopStatus.Ringing, StopStatus.Answered)) {
            assertTrue(expected in statuses, "the screen showed $expected (saw $statuses)")
        }
        assertTrue(statuses.any { it is StopStatus.Calling }, "the screen showed a call being placed")
        assertTrue(history.toList().all { it.activeCalls <= it.maxActive })

        // The app is killed and opened again with the server gone: each
        // stop's story comes back from the phone's own database.
        vm.close()
        server.close()
        val reopened = viewModel(server.url, depot.courierToken)
        val restored = reopened.await("the stored timelines") { s ->
            s.stops.size == 3 && s.stops.all { row -> row.timeline.any { it.label == "Attempt 1 answered" } }
        }
        for (row in restored.stops) {
            val before = done.stops.first { it.stopId == row.stopId }.timeline.map { it.label }.filter { it != "Queued" }
            assertEquals(before, row.timeline.map { it.label }, "${row.customerName}: the same story after a restart")
        }
    }

    @Test
    fun `the courier reorders the route, ETAs and window flags follow, and the order reaches the server`() {
        val server = LiveServer.start(dir).also { closing += it }
        val depot = Depot(server)
        val t0 = Instant.now()
        fun at(minutes: Long): Instant = t0.plusSeconds(60 * minutes)
        val hhmm = DateTimeFormatter.ofPattern("HH:mm").withZone(ZoneId.of("Europe/Moscow"))
        depot.importRoute(listOf(at(30) to at(90), at(0) to at(20), at(40) to at(120)))
        // The courier's other phone, to see the order arrive over the websocket.
        val other = Recorder()
        val otherPhone = CourierClient.open(
            ClientSettings(dir.resolve("other.db").toString(), server.url, depot.courierToken), other,
        )
        closing += AutoCloseable { otherPhone.shutdown(); otherPhone.close() }
        runBlocking { otherPhone.syncRoute(depot.date.toString()) }
        other.awaitOnline()

        // Default plan settings: 10 min to a stop of unknown location, 5 min there.
        val vm = viewModel(server.url, depot.courierToken, clock = { t0 })
        runBlocking { vm.sync(depot.date.toString()) }
        val planned = vm.await("ETAs") { s -> s.stops.size == 3 && s.stops.all { it.etaText != null } }
        assertEquals(listOf("Customer 0", "Customer 1", "Customer 2"), planned.stops.map { it.customerName })
        assertEquals(listOf(WindowFit.EARLY, WindowFit.LATE, WindowFit.INSIDE), planned.stops.map { it.windowFit })
        assertEquals(listOf(at(10), at(45), at(60)).map(hhmm::format), planned.stops.map { it.etaText })

        // The late stop first: every stop fits (the first one waits for its window).
        vm.moveStop(1, 0)
        val moved = vm.await("the new order's ETAs") { s ->
            s.stops.map { it.customerName } == listOf("Customer 1", "Customer 0", "Customer 2") &&
                s.stops[0].windowFit == WindowFit.INSIDE
        }
        assertEquals(listOf(0, 1, 2), moved.stops.map { it.sequence })
        assertEquals(listOf(WindowFit.INSIDE, WindowFit.EARLY, WindowFit.INSIDE), moved.stops.map { it.windowFit })
        assertEquals(listOf(at(10), at(25), at(45)).map(hhmm::format), moved.stops.map { it.etaText })

        other.await("the new order to reach the other phone") { s -> s.events.any { it.event.kind == "route_planned" } }
        assertEquals(listOf("ORD-1", "ORD-0", "ORD-2"), depot.plannedOrder(), "the server has the courier's order")
        assertEquals(listOf("ORD-1", "ORD-0", "ORD-2"), otherPhone.stops().map { it.stop.externalId })

        // Delivered: the stop leaves the ETA chain.
        vm.setVisited(moved.stops[0].stopId, true)
        val visited = vm.await("the visited stop to leave the plan") { s -> s.stops[0].visited && s.stops[0].etaText == null }
        assertEquals(WindowFit.UNKNOWN, visited.stops[0].windowFit)
        assertEquals(listOf(null, hhmm.format(at(10)), hhmm.format(at(45))), visited.stops.map { it.etaText })
        assertNull(visited.error)
    }

    @Test
    fun `the offline banner shows while the server is away, and a tap made then is placed once`() {
        val server = LiveServer.start(dir).also { closing += it }
        val depot = Depot(server)
        depot.importRoute(2)
        val vm = viewModel(server.url, depot.courierToken)
        runBlocking { vm.sync(depot.date.toString()) }
        val online = vm.await("online") { it.connection == ConnectionState.ONLINE }
        assertFalse(online.offlineBanner)

        server.stop()
        vm.await("the offline banner") { it.offlineBanner && it.connection != ConnectionState.ONLINE }
        val stopId = online.stops[0].stopId
        vm.callStop(stopId)
        val queued = vm.await("the tap to be queued") { s -> s.stops[0].status == StopStatus.Queued }
        assertEquals(1, queued.queued)
        assertTrue(queued.offlineBanner)

        server.restart()
        val done = vm.await("the call to end after reconnecting") { s ->
            s.stops[0].status is StopStatus.Done && !s.offlineBanner
        }
        assertEquals(StopStatus.Idle, done.stops[1].status, "the other stop was not called")
        assertEquals(1, depot.calls().size, "exactly one call on the server")
    }

    @Test
    fun `errors become state, not crashes`() {
        val port = ServerSocket(0).use { it.localPort } // nothing listens there now
        val vm = viewModel("http://127.0.0.1:$port", "no-such-token")

        runBlocking { vm.sync("2026-11-23") }
        val offline = vm.state.value
        assertNotNull(offline.error)
        assertTrue(offline.error!!.startsWith("Offline"), offline.error)
        assertTrue(offline.offlineBanner, "a failed sync shows the banner")

        vm.dismissError()
        vm.await("the error to go away") { it.error == null }
        runBlocking { vm.sync("not a date") }
        assertTrue(vm.state.value.error!!.contains("YYYY-MM-DD"), vm.state.value.error)

        vm.callStop(404)
        vm.await("the unknown stop to be reported") { it.error != null && !it.error!!.contains("YYYY-MM-DD") }
        vm.close()
        vm.callNextHour() // after close: no crash, nothing happens
    }
}
