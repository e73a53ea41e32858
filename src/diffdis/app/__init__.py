"""The web app: inputs.py checks what a browser sends, service.py does the model work, ui.py is the Gradio face
(`diffdis app`; needs the `app` extra)."""
