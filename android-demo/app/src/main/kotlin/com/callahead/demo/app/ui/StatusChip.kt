package com.callahead.demo.app.ui

import androidx.compose.foundation.layout.padding
import androidx.compose.material3.ColorScheme
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.unit.dp
import com.callahead.demo.StopStatus
import uniffi.callahead.Outcome

/** The live call status of one stop; the words come from the view model. */
@Composable
fun StatusChip(status: StopStatus, text: String, modifier: Modifier = Modifier) {
    val (container, content) = MaterialTheme.colorScheme.statusColors(status)
    Surface(color = container, contentColor = content, shape = MaterialTheme.shapes.small, modifier = modifier) {
        Text(
            text = text,
            style = MaterialTheme.typography.labelLarge,
            modifier = Modifier.padding(horizontal = 10.dp, vertical = 4.dp),
        )
    }
}

/** Whether the stop's call is under way, so the courier may cancel it. */
fun StopStatus.inProgress(): Boolean = when (this) {
    StopStatus.Queued, StopStatus.Sending, is StopStatus.Calling, StopStatus.Ringing, StopStatus.Answered -> true
    else -> false
}

private fun ColorScheme.statusColors(status: StopStatus): Pair<Color, Color> = when (status) {
    StopStatus.Idle, StopStatus.Cancelled -> surfaceVariant to onSurfaceVariant
    StopStatus.Queued, StopStatus.Sending -> secondaryContainer to onSecondaryContainer
    is StopStatus.Calling, StopStatus.Ringing, StopStatus.Answered -> tertiaryContainer to onTertiaryContainer
    is StopStatus.Done -> when (status.outcome) {
        Outcome.CONFIRMED -> primaryContainer to onPrimaryContainer
        Outcome.RESCHEDULE_REQUESTED, Outcome.WANTS_COURIER -> secondaryContainer to onSecondaryContainer
        Outcome.DECLINED, Outcome.NO_ANSWER, Outcome.FAILED, Outcome.OUTSIDE_CALLING_HOURS, Outcome.INTERRUPTED ->
            errorContainer to onErrorContainer
    }
    is StopStatus.Failed -> errorContainer to onErrorContainer
}
