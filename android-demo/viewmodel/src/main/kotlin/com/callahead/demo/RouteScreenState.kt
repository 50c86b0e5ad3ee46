package com.callahead.demo

import uniffi.callahead.ConnectionState
import uniffi.callahead.Outcome
import java.time.Instant

/** How the estimated arrival relates to the customer's delivery window. */
enum class WindowFit { INSIDE, EARLY, LATE, UNKNOWN }

/** What the courier sees for one stop's smart call. */
sealed interface StopStatus {
    /** No call requested yet. */
    data object Idle : StopStatus

    /** Tapped and stored; waiting for signal or for a free line (5 at most). */
    data object Queued : StopStatus

    /** The request is on its way to the server. */
    data object Sending : StopStatus

    /** Attempt [attempt] of [maxAttempts] is being placed or is due. */
    data class Calling(val attempt: Int, val maxAttempts: Int) : StopStatus

    data object Ringing : StopStatus

    /** The customer picked up and is listening to the message. */
    data object Answered : StopStatus

    data class Done(val outcome: Outcome) : StopStatus

    data object Cancelled : StopStatus

    /** The server refused the request for good; [code] is its wire code. */
    data class Failed(val code: String, val message: String) : StopStatus
}

/** One line of a stop's history: "Attempt 1 ringing", "Key 1 pressed", "Confirmed". */
data class TimelineEntry(val at: Instant, val label: String)

data class StopRow(
    val stopId: Long,
    val sequence: Int,
    val customerName: String,
    val address: String,
    /** "10:00–11:00" in the customer's time zone. */
    val windowText: String,
    /** Estimated arrival, "10:25" in the customer's time zone; null until planned or once visited. */
    val etaText: String?,
    /** Whether that arrival falls inside the delivery window; UNKNOWN without an ETA. */
    val windowFit: WindowFit,
    val status: StopStatus,
    val statusText: String,
    val timeline: List<TimelineEntry>,
    /** Marked delivered by the courier ([RouteViewModel.setVisited]). */
    val visited: Boolean = false,
    /** Why the customer's answer took the stop out of today's chain (no ETA, not called ahead); null while in it. */
    val outOfChain: String? = null,
)

data class RouteScreenState(
    /** The synced route's date, `YYYY-MM-DD`; empty before the first sync. */
    val date: String,
    /** In the courier's planned order. */
    val stops: List<StopRow>,
    val connection: ConnectionState,
    /** Show "offline: taps are kept and sent when the signal is back". */
    val offlineBanner: Boolean,
    /** Calls counting against the cap: running calls plus requests on their way. */
    val activeCalls: Int,
    val maxActive: Int = MAX_ACTIVE_CALLS,
    /** Taps waiting to be sent. */
    val queued: Int,
    /** The last thing that went wrong, for a snackbar; null when all is well. */
    val error: String?,
) {
    companion object {
        /** The server's and the core's cap on simultaneous smart calls per courier. */
        const val MAX_ACTIVE_CALLS = 5

        val EMPTY = RouteScreenState(
            date = "",
            stops = emptyList(),
            connection = ConnectionState.OFFLINE,
            offlineBanner = false,
            activeCalls = 0,
            queued = 0,
            error = null,
        )
    }
}
