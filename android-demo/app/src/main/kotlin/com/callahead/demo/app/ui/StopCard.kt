package com.callahead.demo.app.ui

import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.size
import androidx.compose.foundation.shape.CircleShape
import androidx.compose.material.icons.Icons
import androidx.compose.material.icons.filled.KeyboardArrowDown
import androidx.compose.material.icons.filled.KeyboardArrowUp
import androidx.compose.material3.ElevatedCard
import androidx.compose.material3.FilledTonalButton
import androidx.compose.material3.Icon
import androidx.compose.material3.IconButton
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.style.TextOverflow
import androidx.compose.ui.unit.dp
import com.callahead.demo.StopRow
import com.callahead.demo.StopStatus
import com.callahead.demo.WindowFit

/**
 * One stop in planned order: who, where, the delivery window, the estimated
 * arrival (flagged when it misses the window), the call status, and the
 * courier's actions. Tapping the card opens the stop's timeline.
 */
@Composable
fun StopCard(
    row: StopRow,
    number: Int,
    canMoveUp: Boolean,
    canMoveDown: Boolean,
    onMoveUp: () -> Unit,
    onMoveDown: () -> Unit,
    onCall: () -> Unit,
    onCancel: () -> Unit,
    onOpenTimeline: () -> Unit,
    modifier: Modifier = Modifier,
) {
    ElevatedCard(onClick = onOpenTimeline, modifier = modifier.fillMaxWidth()) {
        Row(
            verticalAlignment = Alignment.CenterVertically,
            modifier = Modifier.padding(start = 12.dp, top = 12.dp, bottom = 12.dp, end = 4.dp),
        ) {
            Column(verticalArrangement = Arrangement.spacedBy(4.dp), modifier = Modifier.weight(1f)) {
                Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    SequenceBadge(number)
                    Text(
                        text = row.customerName,
                        style = MaterialTheme.typography.titleMedium,
                        maxLines = 1,
                        overflow = TextOverflow.Ellipsis,
                    )
                }
                Text(
                    text = row.address,
                    style = MaterialTheme.typography.bodyMedium,
                    color = MaterialTheme.colorScheme.onSurfaceVariant,
                    maxLines = 2,
                    overflow = TextOverflow.Ellipsis,
                )
                Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    Text(text = row.windowText, style = MaterialTheme.typography.bodyMedium)
                    row.etaText?.let { eta ->
                        Text(text = "ETA $eta", style = MaterialTheme.typography.bodyMedium)
                    }
                    WindowFitFlag(row.windowFit)
                }
                Row(
                    verticalAlignment = Alignment.CenterVertically,
                    horizontalArrangement = Arrangement.spacedBy(8.dp),
                    modifier = Modifier.padding(top = 4.dp),
                ) {
                    StatusChip(row.status, row.statusText)
                    if (row.status.inProgress()) {
                        OutlinedButton(onClick = onCancel) { Text("Cancel") }
                    } else {
                        FilledTonalButton(onClick = onCall) {
                            Text(if (row.status == StopStatus.Idle) "Call" else "Call again")
                        }
                    }
                }
            }
            Column {
                IconButton(onClick = onMoveUp, enabled = canMoveUp) {
                    Icon(Icons.Filled.KeyboardArrowUp, contentDescription = "Move ${row.customerName} up")
                }
                IconButton(onClick = onMoveDown, enabled = canMoveDown) {
                    Icon(Icons.Filled.KeyboardArrowDown, contentDescription = "Move ${row.customerName} down")
                }
            }
        }
    }
}

@Composable
private fun SequenceBadge(number: Int) {
    Surface(
        shape = CircleShape,
        color = MaterialTheme.colorScheme.primary,
        contentColor = MaterialTheme.colorScheme.onPrimary,
        modifier = Modifier.size(24.dp),
    ) {
        Box(contentAlignment = Alignment.Center) {
            Text(text = number.toString(), style = MaterialTheme.typography.labelMedium)
        }
    }
}

/**
 * Only an estimate outside the window is flagged: early (the courier waits)
 * in a quieter colour than late (the customer waits). Inside or unknown stays quiet.
 */
@Composable
private fun WindowFitFlag(fit: WindowFit) {
    val colors = MaterialTheme.colorScheme
    val (label, container, content) = when (fit) {
        WindowFit.EARLY -> Triple("early", colors.tertiaryContainer, colors.onTertiaryContainer)
        WindowFit.LATE -> Triple("late", colors.errorContainer, colors.onErrorContainer)
        WindowFit.INSIDE, WindowFit.UNKNOWN -> return
    }
    Surface(color = container, contentColor = content, shape = MaterialTheme.shapes.extraSmall) {
        Text(
            text = label,
            style = MaterialTheme.typography.labelMedium,
            modifier = Modifier.padding(horizontal = 6.dp, vertical = 2.dp),
        )
    }
}
