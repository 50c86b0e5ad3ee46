package com.callahead.demo.app

import android.os.Build
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.BackHandler
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import androidx.activity.viewModels
import androidx.compose.foundation.isSystemInDarkTheme
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.darkColorScheme
import androidx.compose.material3.dynamicDarkColorScheme
import androidx.compose.material3.dynamicLightColorScheme
import androidx.compose.material3.lightColorScheme
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.compose.ui.platform.LocalContext
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import androidx.lifecycle.viewmodel.initializer
import androidx.lifecycle.viewmodel.viewModelFactory
import com.callahead.demo.app.ui.RouteScreen
import com.callahead.demo.app.ui.SettingsScreen

class MainActivity : ComponentActivity() {
    private val host: RouteHostViewModel by viewModels {
        viewModelFactory { initializer { RouteHostViewModel(SettingsStore(applicationContext)) } }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        enableEdgeToEdge()
        setContent {
            CallaheadTheme {
                CallaheadApp(host)
            }
        }
    }
}

/** Settings until a client is open, the route after; the settings again on request. */
@Composable
private fun CallaheadApp(host: RouteHostViewModel) {
    val route by host.route.collectAsStateWithLifecycle()
    var editingSettings by rememberSaveable { mutableStateOf(false) }

    val current = route
    if (current == null || editingSettings) {
        val back = if (current != null) ({ editingSettings = false }) else null
        BackHandler(enabled = back != null) { back?.invoke() }
        SettingsScreen(
            initialServerUrl = host.serverUrl,
            initialToken = host.token,
            onSave = { url, token ->
                host.saveSettings(url, token)
                editingSettings = false
            },
            onBack = back,
        )
    } else {
        val state by current.state.collectAsStateWithLifecycle()
        val refreshing by host.refreshing.collectAsStateWithLifecycle()
        RouteScreen(
            state = state,
            refreshing = refreshing,
            onRefresh = host::refresh,
            onCallNextHour = current::callNextHour,
            onCall = current::callStop,
            onCancel = current::cancel,
            onMove = current::moveStop,
            onOpenSettings = { editingSettings = true },
        )
    }
}

/** Material 3, with the wallpaper's colours on Android 12 and later. */
@Composable
private fun CallaheadTheme(content: @Composable () -> Unit) {
    val dark = isSystemInDarkTheme()
    val colors = when {
        Build.VERSION.SDK_INT >= Build.VERSION_CODES.S -> {
            val context = LocalContext.current
            if (dark) dynamicDarkColorScheme(context) else dynamicLightColorScheme(context)
        }
        dark -> darkColorScheme()
        else -> lightColorScheme()
    }
    MaterialTheme(colorScheme = colors, content = content)
}
