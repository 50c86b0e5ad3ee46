package com.callahead.demo.app.ui

import androidx.compose.material3.MaterialTheme
import androidx.compose.runtime.Composable
import androidx.compose.ui.tooling.preview.Preview
import com.callahead.demo.RouteScreenState
import com.callahead.demo.StopRow
import com.callahead.demo.StopStatus
import com.callahead.demo.TimelineEntry
import com.callahead.demo.WindowFit
import uniffi.callahead.ConnectionState
import uniffi.callahead.Outcome
import java.time.Instant

// Sample data for Android Studio's previews: the screens without a server or the native library.

private val t0: Instant = Instant.parse("2025-06-02T09:00:00Z")

internal val sampleRoute = RouteScreenState(
    date = "2025-06-02",
    stops = listOf(
        StopRow(
            stopId = 11, sequence = 0, customerName = "Anna Schmidt", address = "Torstraße 12, Berlin",
            windowText = "11:00–12:00", etaText = "11:10", windowFit = WindowFit.INSIDE,
            status = StopStatus.Done(Outcome.CONFIRMED), statusText = "Confirmed",
            timeline = listOf(
                TimelineEntry(t0, "Call queued"),
                TimelineEntry(t0.plusSeconds(2), "Calling, attempt 1 of 3"),
                TimelineEntry(t0.plusSeconds(9), "Ringing"),
                TimelineEntry(t0.plusSeconds(15), "Answered"),
                TimelineEntry(t0.plusSeconds(31), "Pressed 1: confirmed"),
            ),
        ),
        StopRow(
            stopId = 12, sequence = 1, customerName = "Jonas Weber", address = "Invalidenstraße 117, Berlin",
            windowText = "11:30–12:30", etaText = "11:35", windowFit = WindowFit.INSIDE,
            status = StopStatus.Ringing, statusText = "Ringing",
            timeline = listOf(TimelineEntry(t0, "Call queued"), TimelineEntry(t0.plusSeconds(3), "Ringing")),
        ),
        StopRow(
            stopId = 13, sequence = 2, customerName = "Leyla Kaya", address = "Bernauer Str. 5, Berlin",
            windowText = "12:00–13:00", etaText = "13:20", windowFit = WindowFit.LATE,
            status = StopStatus.Calling(attempt = 2, maxAttempts = 3), statusText = "Calling, attempt 2 of 3",
            timeline = emptyList(),
        ),
        StopRow(
            stopId = 14, sequence = 3, customerName = "Marek Nowak", address = "Kastanienallee 77, Berlin",
            windowText = "12:00–14:00", etaText = "12:40", windowFit = WindowFit.INSIDE,
            status = StopStatus.Queued, statusText = "Queued",
            timeline = emptyList(),
        ),
        StopRow(
            stopId = 15, sequence = 4, customerName = "Sofia Rossi", address = "Oderberger Str. 44, Berlin",
            windowText = "15:00–16:00", etaText = "13:05", windowFit = WindowFit.EARLY,
            status = StopStatus.Idle, statusText = "Not called",
            timeline = emptyList(),
        ),
    ),
    connection = ConnectionState.OFFLINE,
    offlineBanner = true,
    activeCalls = 2,
    queued = 1,
    error = null,
)

@Preview(showBackground = true, heightDp = 900)
@Composable
internal fun RouteScreenPreview() {
    MaterialTheme {
        RouteScreen(
            state = sampleRoute,
            refreshing = false,
            onRefresh = {},
            onCallNextHour = {},
            onCall = {},
            onCancel = {},
            onMove = { _, _ -> },
            onOpenSettings = {},
        )
    }
}

@Preview(showBackground = true)
@Composable
internal fun SettingsScreenPreview() {
    MaterialTheme {
        SettingsScreen(
            initialServerUrl = "http://10.0.2.2:8080",
            initialToken = "",
            onSave = { _, _ -> },
            onBack = null,
        )
    }
}

@Preview(showBackground = true)
@Composable
internal fun StopTimelinePreview() {
    MaterialTheme {
        StopTimeline(sampleRoute.stops.first())
    }
}
