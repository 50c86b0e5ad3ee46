package com.callahead.demo

import uniffi.callahead.CallEvent
import uniffi.callahead.CallStatus
import uniffi.callahead.CallaheadException
import uniffi.callahead.OutOfChain
import uniffi.callahead.OutboxState
import uniffi.callahead.Outcome
import uniffi.callahead.ReplanReason
import uniffi.callahead.StopState
import java.time.DateTimeException
import java.time.Instant
import java.time.ZoneId
import java.time.ZoneOffset
import java.time.format.DateTimeFormatter

/** Pure mappings from the bindings' types to what the screen shows. */
internal object Presentation {
    private val hhmm: DateTimeFormatter = DateTimeFormatter.ofPattern("HH:mm")

    /** A request waiting or refused says more than an older call does. */
    fun status(s: StopState): StopStatus {
        when (val outbox = s.outbox) {
            is OutboxState.Failed -> return StopStatus.Failed(outbox.code, outbox.message)
            OutboxState.Queued -> return StopStatus.Queued
            OutboxState.Sending -> return StopStatus.Sending
            null -> {}
        }
        val call = s.call ?: return StopStatus.Idle
        val max = call.maxAttempts.toInt()
        return when (call.status) {
            // Before the first attempt, or waiting for the next one.
            CallStatus.SCHEDULED -> StopStatus.Calling((call.attemptsMade.toInt() + 1).coerceAtMost(max), max)
            CallStatus.DIALING -> StopStatus.Calling(call.attemptsMade.toInt().coerceAtLeast(1), max)
            CallStatus.RINGING -> StopStatus.Ringing
            CallStatus.ANSWERED -> StopStatus.Answered
            CallStatus.FINISHED -> StopStatus.Done(call.outcome ?: Outcome.FAILED)
            CallStatus.CANCELLED -> StopStatus.Cancelled
        }
    }

    /** The status, and why the call started when call-ahead started it. */
    fun statusText(s: StopState, status: StopStatus): String {
        val text = bareStatusText(s, status)
        val auto = s.autoEta ?: return text
        return "$text (auto: ETA ${time(auto, s.stop.timeZone)})"
    }

    private fun bareStatusText(s: StopState, status: StopStatus): String = when (status) {
        StopStatus.Idle -> "Not called"
        StopStatus.Queued -> "Queued"
        StopStatus.Sending -> "Sending…"
        is StopStatus.Calling -> {
            val next = s.call?.nextAttemptAt
            if (s.call?.status == CallStatus.SCHEDULED && next != null && status.attempt > 1) {
                "Attempt ${status.attempt} of ${status.maxAttempts} at ${time(next, s.stop.timeZone)}"
            } else {
                "Calling, attempt ${status.attempt} of ${status.maxAttempts}"
            }
        }
        StopStatus.Ringing -> "Ringing"
        StopStatus.Answered -> "Answered, listening"
        is StopStatus.Done -> outcomeText(status.outcome)
        StopStatus.Cancelled -> "Cancelled"
        is StopStatus.Failed -> "Not sent: ${status.message}"
    }

    fun windowFit(fit: uniffi.callahead.WindowFit?): WindowFit = when (fit) {
        uniffi.callahead.WindowFit.INSIDE -> WindowFit.INSIDE
        uniffi.callahead.WindowFit.EARLY -> WindowFit.EARLY
        uniffi.callahead.WindowFit.LATE -> WindowFit.LATE
        null -> WindowFit.UNKNOWN
    }

    fun outcomeText(o: Outcome): String = when (o) {
        Outcome.CONFIRMED -> "Confirmed"
        Outcome.RESCHEDULE_REQUESTED -> "Wants another time"
        Outcome.DECLINED -> "Declined"
        Outcome.WANTS_COURIER -> "Wants to talk to you"
        Outcome.NO_ANSWER -> "No answer"
        Outcome.FAILED -> "Call failed"
        Outcome.OUTSIDE_CALLING_HOURS -> "Not called: outside calling hours"
        Outcome.INTERRUPTED -> "Call cut off: the server restarted"
    }

    /** "10:00–11:00" in the customer's time zone. */
    fun windowText(s: StopState): String =
        "${time(s.stop.windowStart, s.stop.timeZone)}–${time(s.stop.windowEnd, s.stop.timeZone)}"

    fun time(at: Instant, timeZone: String): String = hhmm.format(at.atZone(zone(timeZone)))

    private fun zone(name: String): ZoneId = try {
        ZoneId.of(name)
    } catch (e: DateTimeException) {
        ZoneOffset.UTC
    }

    /** The timeline line for a server event; null for events that are not a stop's story. */
    fun eventLabel(e: CallEvent): String? {
        val attempt = e.attempt?.let { "Attempt $it" } ?: "Attempt"
        return when (e.kind) {
            "call_requested" -> "Call requested"
            "attempt_placed" -> "$attempt dialing"
            "ringing" -> "$attempt ringing"
            "answered" -> "$attempt answered"
            "key_pressed" -> "Key ${e.key ?: "?"} pressed"
            "attempt_ended" -> "$attempt ended: ${e.attemptResult?.replace('_', ' ') ?: "unknown"}"
            "call_finished" -> e.outcome?.let(::outcomeText) ?: "Finished"
            "call_cancelled" -> "Cancelled"
            "call_deferred" -> "Waits for calling hours"
            "direct_call_logged" -> "You called: ${e.note ?: ""}"
            "courier_bridged" -> if (e.connected == true) "Put through to you" else "You were busy: call them back"
            "route_planned" -> e.replanReason?.let(::replanText)
            else -> null
        }
    }

    fun outOfChainText(o: OutOfChain): String = when (o) {
        OutOfChain.DECLINED -> "Declined: not on today's route"
        OutOfChain.ANOTHER_DAY -> "Moved to another day"
    }

    fun replanText(r: ReplanReason): String = when (r) {
        ReplanReason.DECLINED -> "Route re-planned: declined, moved to the end"
        ReplanReason.ANOTHER_DAY -> "Route re-planned: another day, moved to the end"
        ReplanReason.NEW_WINDOW_TODAY -> "Route re-planned: moved to fit the new window"
    }

    /** A sentence for the snackbar. */
    fun errorText(e: Throwable): String = when (e) {
        is CallaheadException.Offline -> "Offline: ${e.detail}"
        is CallaheadException.Unauthorized -> "Signed out: ${e.detail}"
        is CallaheadException.Server -> "The server refused (${e.code}): ${e.detail}"
        is CallaheadException.InvalidInput -> e.detail
        is CallaheadException.Storage -> "Local storage failed: ${e.detail}"
        is CallaheadException.Internal -> "Internal error: ${e.detail}"
        else -> e.message ?: e.toString()
    }
}
