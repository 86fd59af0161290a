"""Export: ``convert`` turns a ``.keras`` detector into TFLite / ONNX files (``routes`` picks the converter route,
``tflite`` and ``onnx`` run it), verifies each file against the Keras model and ``gate`` decides ok / unproven /
failed. Imports the layers below (core, images, modelling, runtime); needs the ``train`` extra (TensorFlow)."""
